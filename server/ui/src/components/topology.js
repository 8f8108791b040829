// The flow's tasks as an SVG graph, laid out here without a library: a
// flow is a tree of blocks (a task, a sequence, a row side by side, a
// labelled branch, a flowable task's cluster, a DAG) and each block is
// measured from its children, then drawn at the offset its parent gives.
import { html } from "htm/preact";

const NODE_H = 44;
const NODE_MIN_W = 130;
const NODE_MAX_W = 300;
const GAP_Y = 26;
const GAP_X = 18;
const PAD = 10;
const LABEL_H = 22;
const HEADER_H = 38;
const CHAR_W = 7.2;
/** Room between the lanes of DAG edges that go round tasks. */
const LANE_W = 8;

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isTask = (v) => isObject(v) && typeof v.id === "string" && typeof v.type === "string";
const isTaskList = (v) => Array.isArray(v) && v.length > 0 && v.every(isTask);
const typeIs = (task, name) => task.type.split(".").pop() === name;

export const shortType = (type) => String(type || "").split(".").pop();

// ---- the flow as blocks ----

function taskBlock(task) {
  const body = bodyOf(task);
  return body ? { kind: "group", task, body } : { kind: "task", task };
}

const seqOf = (tasks) => ({ kind: "seq", items: tasks.map(taskBlock) });

const branch = (label, tasks, tone) => ({ kind: "branch", label, tone, body: seqOf(tasks) });

/** What a flowable task holds; null for a task that holds no tasks. */
function bodyOf(task) {
  const columns = [];
  if (typeIs(task, "Dag") && Array.isArray(task.tasks)) columns.push(dagOf(task.tasks));
  else if (isTaskList(task.tasks)) {
    columns.push(typeIs(task, "Parallel") ? { kind: "row", items: task.tasks.map(taskBlock) } : seqOf(task.tasks));
  }
  if (isTaskList(task.then)) columns.push(branch("then", task.then));
  if (isTaskList(task.else)) columns.push(branch("else", task.else));
  if (isObject(task.cases)) {
    for (const [name, tasks] of Object.entries(task.cases)) {
      if (isTaskList(tasks)) columns.push(branch(`case ${name}`, tasks));
    }
    // A Switch's `defaults` are the tasks of no case.
    if (isTaskList(task.defaults)) columns.push(branch("defaults", task.defaults));
  }
  if (isTaskList(task.errors)) columns.push(branch("errors", task.errors, "error"));
  if (isTaskList(task.finally)) columns.push(branch("finally", task.finally));
  if (isTaskList(task.afterExecution)) columns.push(branch("afterExecution", task.afterExecution));
  if (!columns.length) return null;
  return columns.length === 1 ? columns[0] : { kind: "row", items: columns };
}

function dagOf(entries) {
  const nodes = entries
    .filter((e) => isTask(e?.task))
    .map((e) => ({
      id: e.task.id,
      block: taskBlock(e.task),
      deps: Array.isArray(e.dependsOn) ? e.dependsOn.filter((d) => typeof d === "string") : [],
    }));
  return { kind: "dag", nodes };
}

/** The flow's main tasks, then its errors, finally and afterExecution beside. */
function flowBlock(flow) {
  const columns = [];
  if (isTaskList(flow.tasks)) columns.push(seqOf(flow.tasks));
  if (isTaskList(flow.errors)) columns.push(branch("errors", flow.errors, "error"));
  if (isTaskList(flow.finally)) columns.push(branch("finally", flow.finally));
  if (isTaskList(flow.afterExecution)) columns.push(branch("afterExecution", flow.afterExecution));
  if (!columns.length) return null;
  return columns.length === 1 ? columns[0] : { kind: "row", items: columns };
}

// ---- layout: each returns {w, h, draw(x, y) -> SVG nodes} ----

const textWidth = (text, charW = CHAR_W) => Math.ceil(String(text).length * charW);

function clip(text, width, charW) {
  const room = Math.floor(width / charW);
  return text.length <= room ? text : `${text.slice(0, Math.max(1, room - 1))}…`;
}

function layout(block) {
  switch (block.kind) {
    case "task": return layoutTask(block.task);
    case "seq": return layoutSeq(block.items.map(layout));
    case "row": return layoutRow(block.items.map(layout));
    case "branch": return layoutBranch(block);
    case "group": return layoutGroup(block);
    case "dag": return layoutDag(block.nodes);
    default: throw new Error(`unknown block ${block.kind}`);
  }
}

function layoutTask(task) {
  const type = shortType(task.type);
  const w = Math.min(NODE_MAX_W, Math.max(NODE_MIN_W, textWidth(task.id) + 20, textWidth(type, 6.4) + 20));
  const draw = (x, y) => html`
    <g class="node" data-task=${task.id} transform=${`translate(${x},${y})`}>
      <title>${task.id} (${task.type})</title>
      <rect width=${w} height=${NODE_H} rx="5" />
      <text class="id" x="10" y="18">${clip(task.id, w - 20, CHAR_W)}</text>
      <text class="type" x="10" y="34">${clip(type, w - 20, 6.4)}</text>
    </g>`;
  return { w, h: NODE_H, draw };
}

/** Top to bottom, centred, an arrow from each to the next. */
function layoutSeq(items) {
  if (!items.length) return layoutNote("no tasks");
  const w = Math.max(...items.map((i) => i.w));
  const h = items.reduce((sum, i) => sum + i.h, 0) + GAP_Y * (items.length - 1);
  const draw = (x, y) => {
    const out = [];
    let top = y;
    items.forEach((item, n) => {
      if (n > 0) out.push(arrow(x + w / 2, top - GAP_Y, x + w / 2, top));
      out.push(item.draw(x + (w - item.w) / 2, top));
      top += item.h + GAP_Y;
    });
    return out;
  };
  return { w, h, draw };
}

/** Side by side, tops aligned. */
function layoutRow(items) {
  const w = items.reduce((sum, i) => sum + i.w, 0) + GAP_X * (items.length - 1);
  const h = Math.max(...items.map((i) => i.h));
  const draw = (x, y) => {
    let left = x;
    return items.map((item) => {
      const drawn = item.draw(left, y);
      left += item.w + GAP_X;
      return drawn;
    });
  };
  return { w, h, draw };
}

function layoutNote(text) {
  const w = NODE_MIN_W;
  return { w, h: LABEL_H, draw: (x, y) => html`<text class="note" x=${x + w / 2} y=${y + 15} text-anchor="middle">${text}</text>` };
}

/** A dashed box with a label (then, else, a case, errors...). */
function layoutBranch({ label, tone, body }) {
  const inner = layout(body);
  const w = Math.max(inner.w, textWidth(label, 6.6)) + 2 * PAD;
  const h = inner.h + LABEL_H + PAD;
  const draw = (x, y) => html`
    <g class=${`branch${tone ? ` ${tone}` : ""}`} data-branch=${label}>
      <rect x=${x} y=${y} width=${w} height=${h} rx="6" />
      <text class="label" x=${x + PAD} y=${y + 15}>${label}</text>
      ${inner.draw(x + (w - inner.w) / 2, y + LABEL_H)}
    </g>`;
  return { w, h, draw };
}

/** A flowable task: a cluster headed by its id and type, holding its tasks. */
function layoutGroup({ task, body }) {
  const inner = layout(body);
  const type = shortType(task.type);
  const w = Math.max(inner.w, textWidth(task.id) + 20, textWidth(type, 6.4) + 20) + 2 * PAD;
  const h = inner.h + HEADER_H + PAD;
  const draw = (x, y) => html`
    <g class="cluster" data-task=${task.id}>
      <title>${task.id} (${task.type})</title>
      <rect x=${x} y=${y} width=${w} height=${h} rx="6" />
      <text class="id" x=${x + PAD} y=${y + 16}>${task.id}</text>
      <text class="type" x=${x + PAD} y=${y + 30}>${type}</text>
      ${inner.draw(x + (w - inner.w) / 2, y + HEADER_H)}
    </g>`;
  return { w, h, draw };
}

/** Depth of each DAG node: 0 without dependencies, else 1 + its deepest one's. */
function depths(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const visiting = new Set();
  const of = (node) => {
    if (depth.has(node.id)) return depth.get(node.id);
    // A cycle (which validation refuses) must not loop forever here.
    if (visiting.has(node.id)) return 0;
    visiting.add(node.id);
    const known = node.deps.map((d) => byId.get(d)).filter(Boolean);
    const d = known.length ? 1 + Math.max(...known.map(of)) : 0;
    visiting.delete(node.id);
    depth.set(node.id, d);
    return d;
  };
  nodes.forEach(of);
  return depth;
}

/**
 * Layers by dependency depth, an edge from each dependency. An edge that
 * skips layers would run behind the tasks between, so it goes round them,
 * down a lane of its own on the right.
 */
function layoutDag(nodes) {
  if (!nodes.length) return layoutNote("no tasks");
  const depth = depths(nodes);
  const layers = [];
  for (const node of nodes) (layers[depth.get(node.id)] ||= []).push({ node, box: layout(node.block) });
  const rows = layers.filter(Boolean).map((members) => ({
    members,
    w: members.reduce((sum, m) => sum + m.box.w, 0) + GAP_X * (members.length - 1),
    h: Math.max(...members.map((m) => m.box.h)),
  }));
  const edges = nodes.flatMap((node) => node.deps
    .filter((d) => depth.has(d))
    .map((d) => ({ from: d, to: node.id, long: depth.get(node.id) - depth.get(d) > 1 })));
  const longCount = edges.filter((e) => e.long).length;
  const inner = Math.max(...rows.map((r) => r.w));
  const w = inner + (longCount ? GAP_X + LANE_W * (longCount - 1) : 0);
  const h = rows.reduce((sum, r) => sum + r.h, 0) + 2 * GAP_Y * (rows.length - 1);
  const draw = (x, y) => {
    const at = new Map();
    const drawn = [];
    let top = y;
    for (const row of rows) {
      let left = x + (inner - row.w) / 2;
      for (const { node, box } of row.members) {
        at.set(node.id, { x: left, y: top, w: box.w, h: box.h });
        drawn.push(box.draw(left, top));
        left += box.w + GAP_X;
      }
      top += row.h + 2 * GAP_Y;
    }
    let lane = x + inner + GAP_X / 2;
    const lines = edges.map(({ from, to, long }) => {
      const a = at.get(from);
      const b = at.get(to);
      const start = [a.x + a.w / 2, a.y + a.h];
      const end = [b.x + b.w / 2, b.y];
      const name = `${from}->${to}`;
      if (!long) return curve(...start, ...end, name);
      const path = detour(start, end, lane, name);
      lane += LANE_W;
      return path;
    });
    return [...lines, ...drawn];
  };
  return { w, h, draw };
}

function arrow(x1, y1, x2, y2) {
  return html`<line class="edge" x1=${x1} y1=${y1} x2=${x2} y2=${y2} marker-end="url(#topology-arrow)" />`;
}

/** Down from `start`, across to `laneX`, down the lane, across and into `end`. */
function detour([x1, y1], [x2, y2], laneX, name) {
  const out = y1 + GAP_Y / 2;
  const into = y2 - GAP_Y / 2;
  return html`<path class="edge" data-edge=${name} d=${`M${x1},${y1} L${x1},${out} L${laneX},${out} L${laneX},${into} L${x2},${into} L${x2},${y2}`}
    marker-end="url(#topology-arrow)" />`;
}

function curve(x1, y1, x2, y2, name) {
  const bend = Math.max(GAP_Y, (y2 - y1) / 2);
  return html`<path class="edge" data-edge=${name} d=${`M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`}
    marker-end="url(#topology-arrow)" />`;
}

export function Topology({ flow }) {
  const block = flowBlock(flow);
  if (!block) return html`<p class="muted" data-testid="topology">This flow has no tasks.</p>`;
  const { w, h, draw } = layout(block);
  const margin = 4;
  const width = Math.ceil(w + 2 * margin);
  const height = Math.ceil(h + 2 * margin);
  return html`
    <div class="topology-wrap">
      <svg class="topology" data-testid="topology" xmlns="http://www.w3.org/2000/svg"
        width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`} role="img"
        aria-label=${`Tasks of ${flow.namespace}.${flow.id}`}>
        <defs>
          <marker id="topology-arrow" viewBox="0 0 10 10" refX="10" refY="5"
            markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" />
          </marker>
        </defs>
        ${draw(margin, margin)}
      </svg>
    </div>`;
}
