// Task runs against time: one bar per task run, from its first state to
// its end (or now, while it runs), on the execution's time scale. Children
// sit under their parent; the runs of a ForEach (one per value) are
// grouped under their value, folded when there are many.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { colorOf } from "../states.js";
import { humanDuration, stateDuration } from "../time.js";

/** The task runs as a tree: `{run, children, groups}` from `taskRunList`. */
export function tree(taskRuns) {
  const nodes = new Map(taskRuns.map((run) => [run.id, { run, children: [] }]));
  const roots = [];
  for (const run of taskRuns) {
    const node = nodes.get(run.id);
    const parent = run.parentTaskRunId && nodes.get(run.parentTaskRunId);
    (parent ? parent.children : roots).push(node);
  }
  return roots;
}

/**
 * Rows to draw: a node, then its children, grouped by loop value. Groups
 * are open when a run has at most `OPEN_GROUPS` of them; `toggled` holds
 * the groups the user opened or closed against that.
 */
function rows(nodes, depth, toggled, out) {
  for (const node of nodes) {
    out.push({ kind: "run", node, depth });
    const byValue = new Map();
    for (const child of node.children) {
      const v = child.run.value;
      const own = v !== undefined && v !== null && v !== node.run.value;
      const key = own ? v : "";
      byValue.set(key, [...(byValue.get(key) || []), child]);
    }
    const valued = [...byValue.keys()].filter((k) => k !== "");
    if (valued.length === 0) {
      rows(node.children, depth + 1, toggled, out);
      continue;
    }
    rows(byValue.get("") || [], depth + 1, toggled, out);
    for (const value of valued) {
      const groupId = `${node.run.id}:${value}`;
      const members = byValue.get(value);
      const open = (valued.length <= OPEN_GROUPS) !== toggled.has(groupId);
      out.push({ kind: "group", id: groupId, value, members, depth: depth + 1, open });
      if (open) rows(members, depth + 2, toggled, out);
    }
  }
  return out;
}

/** Loop values shown unfolded; more are folded until opened. */
const OPEN_GROUPS = 5;

function span(state, now) {
  const start = Date.parse(state.startDate || state.histories?.[0]?.date);
  return { start, end: start + stateDuration(state, now) };
}

export function Gantt({ execution, now, selected, onSelect }) {
  const [toggled, setToggled] = useState(new Set());
  const runs = execution.taskRunList || [];
  if (!runs.length) return html`<p class="muted">No task has run yet.</p>`;
  const whole = span(execution.state, now);
  const scale = Math.max(1, whole.end - whole.start);
  const at = (t) => Math.min(100, Math.max(0, ((t - whole.start) / scale) * 100));
  const bar = (state) => {
    const s = span(state, now);
    return `left:${at(s.start)}%;width:${Math.max(0.3, at(s.end) - at(s.start))}%;background:${colorOf(state.current)}`;
  };
  const toggle = (id) => {
    const next = new Set(toggled);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setToggled(next);
  };
  return html`<div class="gantt" data-testid="gantt">
    <div class="row muted"><div class="name">Task</div><div>${humanDuration(scale)}</div><div class="dur">Duration</div></div>
    ${rows(tree(runs), 0, toggled, []).map((r) => {
      if (r.kind === "group") {
        const first = Math.min(...r.members.map((m) => span(m.run.state, now).start));
        const last = Math.max(...r.members.map((m) => span(m.run.state, now).end));
        return html`<div class="row group" data-group=${r.value}>
          <div class="name" style=${`padding-left:${8 + r.depth * 14}px`} onClick=${() => toggle(r.id)}>
            ${r.open ? "▾" : "▸"} value: ${r.value} <span class="muted">(${r.members.length})</span></div>
          <div class="track"><div class="bar" style=${`left:${at(first)}%;width:${Math.max(0.3, at(last) - at(first))}%;background:#c9c3dc`}></div></div>
          <div class="dur">${humanDuration(last - first)}</div>
        </div>`;
      }
      const run = r.node.run;
      return html`<div class=${`row${selected === run.id ? " selected" : ""}`} data-task-run=${run.id} data-task=${run.taskId} data-state=${run.state.current}>
        <div class="name" style=${`padding-left:${8 + r.depth * 14}px`} onClick=${() => onSelect(run.id)}
          title=${run.value ? `${run.taskId} (${run.value})` : run.taskId}>
          ${run.taskId}${run.value && r.depth === 0 ? html` <span class="muted">${run.value}</span>` : null}</div>
        <div class="track" onClick=${() => onSelect(run.id)}><div class="bar" style=${bar(run.state)} title=${run.state.current}></div></div>
        <div class="dur">${humanDuration(stateDuration(run.state, now))}</div>
      </div>`;
    })}
  </div>`;
}
