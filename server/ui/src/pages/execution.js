// One execution, followed live over its SSE stream (Kestra's
// `/executions/{id}/follow`): its state history, a Gantt of its task runs,
// each task run's outputs and attempts, its logs, inputs, outputs and
// labels, and the actions the API has for it.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { api, BASE, follow } from "../api.js";
import { ErrorBox, Json, KeyValues, Labels, StateBadge, Tabs, useTicker } from "../components/common.js";
import { Gantt } from "../components/gantt.js";
import { Link, links } from "../router.js";
import { isTerminal, STATES } from "../states.js";
import { formatDate, humanDuration, stateDuration } from "../time.js";

const TABS = [["overview", "Overview"], ["gantt", "Gantt"], ["logs", "Logs"], ["outputs", "Outputs"]];

/**
 * The execution, live: read once, then every change the server sends.
 * `refollow()` opens the stream again: an execution restarted after its
 * end changes again, on a stream closed at that end.
 */
function useExecution(id) {
  const [state, setState] = useState({ execution: null, error: null, live: false });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    let stopped = false;
    if (generation === 0) setState({ execution: null, error: null, live: false });
    api.execution(id).then(
      (execution) => !stopped && generation === 0 && setState((s) => ({ ...s, execution: s.execution ?? execution })),
      (error) => !stopped && setState((s) => ({ ...s, error })),
    );
    // The stream's last frame has the id `end`; closed then, or
    // EventSource would connect again and be sent it all once more.
    const stop = follow(`${BASE}/executions/${encodeURIComponent(id)}/follow`, {
      message: (data, e) => {
        setState((s) => ({ ...s, execution: JSON.parse(data), live: true }));
        if (e.lastEventId === "end") stop();
      },
      error: () => setState((s) => ({ ...s, live: false })),
    });
    return () => { stopped = true; stop(); };
  }, [id, generation]);
  return { ...state, refollow: () => setGeneration((g) => g + 1) };
}

export function ExecutionPage({ params }) {
  const { namespace, flowId, id, tab = "overview" } = params;
  const { execution, error, refollow } = useExecution(id);
  const [selected, setSelected] = useState(null);
  const [actionError, setActionError] = useState(null);
  const [notice, setNotice] = useState(null);
  const running = execution && !isTerminal(execution.state.current);
  const now = useTicker(250, !!running);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!execution) return html`<p class="muted">Loading ${id}…</p>`;
  const current = execution.state.current;
  const act = (what, call) => async () => {
    setActionError(null);
    setNotice(null);
    try {
      const answer = await call();
      setNotice(`${what}: done`);
      refollow();
      return answer;
    } catch (e) {
      setActionError(e);
      return null;
    }
  };
  const replayed = async () => {
    const answer = await act("Replay", () => api.replay(id))();
    if (answer?.id) setNotice(html`Replayed as <${Link} href=${links.execution(namespace, flowId, answer.id)}>${answer.id}</${Link}>`);
  };
  const failedOrKilled = ["FAILED", "KILLED", "WARNING"].includes(current);
  return html`
    <div class="toolbar">
      <h1 class="grow">
        <${Link} href=${links.flow(namespace, flowId)}>${namespace}.${flowId}</${Link}>
        <span class="mono"> ${id}</span>
      </h1>
      <span data-testid="execution-state"><${StateBadge} state=${current} /></span>
      ${STATES[current]?.killable ? html`<button class="danger" data-testid="kill" onClick=${act("Kill", () => api.kill(id))}>Kill</button>` : null}
      ${current === "PAUSED" ? html`<button data-testid="resume" onClick=${act("Resume", () => api.resume(id))}>Resume</button>` : null}
      ${failedOrKilled ? html`<button data-testid="restart" onClick=${act("Restart", () => api.restart(id))}>Restart</button>` : null}
      ${isTerminal(current) ? html`<button data-testid="replay" onClick=${replayed}>Replay</button>` : null}
    </div>
    <${ErrorBox} error=${actionError} />
    ${notice ? html`<div class="notice">${notice}</div>` : null}
    <${Tabs} tabs=${TABS} current=${tab} href=${(t) => links.execution(namespace, flowId, id, t === "overview" ? "" : t)} />
    ${tab === "overview" ? html`<${Overview} execution=${execution} now=${now} />` : null}
    ${tab === "gantt" ? html`
      <div class="panel"><${Gantt} execution=${execution} now=${now} selected=${selected} onSelect=${setSelected} /></div>
      <${TaskRunDetail} execution=${execution} id=${selected} now=${now} />` : null}
    ${tab === "logs" ? html`<${Logs} id=${id} />` : null}
    ${tab === "outputs" ? html`<${Outputs} execution=${execution} />` : null}`;
}

function Overview({ execution, now }) {
  const s = execution.state;
  return html`
    <div class="grid2">
      <div class="panel">
        <table class="kv"><tbody>
          <tr><th>Namespace</th><td>${execution.namespace}</td></tr>
          <tr><th>Flow</th><td>${execution.flowId} (revision ${execution.flowRevision})</td></tr>
          <tr><th>Created</th><td>${formatDate(s.startDate)}</td></tr>
          <tr><th>Ended</th><td>${formatDate(s.endDate)}</td></tr>
          <tr><th>Duration</th><td data-testid="duration">${humanDuration(stateDuration(s, now))}</td></tr>
          <tr><th>Labels</th><td><${Labels} labels=${execution.labels} /></td></tr>
          ${execution.parentId ? html`<tr><th>Parent</th><td class="mono">${execution.parentId}</td></tr>` : null}
          ${execution.originalId && execution.originalId !== execution.id ? html`<tr><th>Original</th><td class="mono">${execution.originalId}</td></tr>` : null}
        </tbody></table>
      </div>
      <div class="panel">
        <h2>State history</h2>
        <table data-testid="state-history"><tbody>${s.histories.map((h, i) => html`
          <tr><td><${StateBadge} state=${h.state} /></td><td>${formatDate(h.date)}</td>
            <td class="muted">${i > 0 ? since(s.histories[i - 1].date, h.date) : ""}</td></tr>`)}
        </tbody></table>
      </div>
    </div>
    <div class="panel"><h2>Inputs</h2><${KeyValues} map=${execution.inputs} /></div>
    ${execution.trigger ? html`<div class="panel"><h2>Trigger</h2><${Json} value=${execution.trigger} /></div>` : null}`;
}

/** The time from one state to the next, as `+1.5 s`. */
function since(from, to) {
  const text = humanDuration(Date.parse(to) - Date.parse(from));
  return text.startsWith("<") ? text : `+${text}`;
}

function TaskRunDetail({ execution, id, now }) {
  const run = (execution.taskRunList || []).find((r) => r.id === id);
  if (!run) return html`<p class="muted">Select a task run to see its outputs and attempts.</p>`;
  return html`<div class="panel" data-testid="task-run">
    <h2>${run.taskId}${run.value ? ` (${run.value})` : ""} <${StateBadge} state=${run.state.current} /></h2>
    <h2>Attempts</h2>
    <table><thead><tr><th>#</th><th>State</th><th>Started</th><th>Duration</th></tr></thead><tbody>
      ${(run.attempts || []).map((a, i) => html`<tr><td>${i + 1}</td><td><${StateBadge} state=${a.state.current} /></td>
        <td>${formatDate(a.state.startDate || a.state.histories?.[0]?.date)}</td><td>${humanDuration(stateDuration(a.state, now))}</td></tr>`)}
    </tbody></table>
    <h2>Outputs</h2>
    <div data-testid="task-outputs"><${KeyValues} map=${run.outputs} /></div>
  </div>`;
}

function Outputs({ execution }) {
  const runs = (execution.taskRunList || []).filter((r) => r.outputs && Object.keys(r.outputs).length);
  return html`
    <div class="panel"><h2>Flow outputs</h2><${KeyValues} map=${execution.outputs} /></div>
    ${runs.map((r) => html`<div class="panel" data-outputs-of=${r.taskId}>
      <h2>${r.taskId}${r.value ? ` (${r.value})` : ""}</h2><${KeyValues} map=${r.outputs} /></div>`)}
    ${runs.length ? null : html`<p class="muted">No task output.</p>`}`;
}

/** Its log lines: the kept ones, then each as it is logged. */
function Logs({ id }) {
  const [lines, setLines] = useState([]);
  const [level, setLevel] = useState("");
  useEffect(() => {
    setLines([]);
    let pending = [];
    let flush = null;
    // Lines arrive one event each: added to the page in batches.
    const stop = follow(`${BASE}/logs/${encodeURIComponent(id)}/follow${level ? `?minLevel=${level}` : ""}`, {
      message: (data) => {
        pending.push(JSON.parse(data));
        flush ??= requestAnimationFrame(() => {
          const batch = pending;
          pending = [];
          flush = null;
          setLines((l) => l.concat(batch).slice(-10000));
        });
      },
      // The server ends the stream when the execution ends: not
      // reconnected, which would send every line again.
      error: () => stop(),
    });
    return () => { stop(); if (flush) cancelAnimationFrame(flush); };
  }, [id, level]);
  return html`<div class="panel">
    <div class="toolbar"><select aria-label="Minimum level" value=${level} onChange=${(e) => setLevel(e.currentTarget.value)}>
      <option value="">All levels</option>${["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].map((l) => html`<option>${l}</option>`)}
    </select><span class="muted">${lines.length} line${lines.length === 1 ? "" : "s"}</span>
    <a href=${`${BASE}/logs/${encodeURIComponent(id)}/download`}>Download</a></div>
    <pre class="logs" data-testid="logs">${lines.map((l) => `${formatDate(l.timestamp)} ${l.level.padEnd(5)} ${l.taskId || ""} ${l.message}\n`)}</pre>
  </div>`;
}
