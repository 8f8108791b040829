// A flow's page, as in Kestra: its topology and inputs, its YAML in an
// editor checked as one types, its revisions side by side, and the form
// that executes it. `/flows/new` is the same editor on a starter flow.
import { html } from "htm/preact";
import { useCallback, useState } from "preact/hooks";
import { api, get } from "../api.js";
import { enc, Link, links, navigate } from "../router.js";
import { ErrorBox, Labels, Tabs, useAsync } from "../components/common.js";
import { FlowEditor } from "../components/editor.js";
import { shortType, Topology } from "../components/topology.js";
import { Diff } from "../components/diff.js";
import { RunModal } from "../components/runform.js";
import { formatDate } from "../time.js";

const STARTER = `id: hello_world
namespace: company.team

tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: Hello, World!
`;

const TABS = [
  ["overview", "Overview"],
  ["edit", "Edit"],
  ["revisions", "Revisions"],
  ["executions", "Executions"],
];

// What creating a flow said, for its page to show once it opens there.
let createdNotice = null;

export function FlowPage({ params }) {
  if (!params.id) return html`<${NewFlow} />`;
  return html`<${ExistingFlow} key=${`${params.namespace}/${params.id}`}
    namespace=${params.namespace} id=${params.id} tab=${params.tab || "overview"} />`;
}

// ---- /flows/new ----

function NewFlow() {
  const [text, setText] = useState(STARTER);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      const flow = await api.createFlow(text);
      createdNotice = `Created ${flow.namespace}.${flow.id}, revision ${flow.revision}.`;
      navigate(links.flow(flow.namespace, flow.id, "edit"));
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return html`
    <div class="flow-page">
      <div class="toolbar flow-head">
        <h1>New flow</h1>
        <span class="grow"></span>
        <${Link} href=${links.flows()}>Cancel</${Link}>
        <button class="primary" data-testid="save" onClick=${save} disabled=${busy}>Save</button>
      </div>
      <${ErrorBox} error=${error} />
      <${FlowEditor} value=${STARTER} onChange=${setText} onSave=${save} />
    </div>`;
}

// ---- /flows/edit/:namespace/:id/:tab? ----

function ExistingFlow({ namespace, id, tab }) {
  const loaded = useAsync(() => api.flow(namespace, id), [namespace, id]);
  // The flow as last saved here, which is newer than the one loaded.
  const [saved, setSaved] = useState(null);
  const [draft, setDraft] = useState(null);
  const [running, setRunning] = useState(false);
  const closeRun = useCallback(() => setRunning(false), []);

  if (loaded.error) return html`<h1>${namespace}.${id}</h1><${ErrorBox} error=${loaded.error} />`;
  if (!loaded.value) return html`<h1>${namespace}.${id}</h1><p class="muted">Loading…</p>`;
  const flow = saved || loaded.value;
  const href = (tabId) => (tabId === "executions"
    ? links.executions({ namespace, flowId: id })
    : links.flow(namespace, id, tabId === "overview" ? undefined : tabId));

  return html`
    <div class="flow-page">
      <div class="toolbar flow-head">
        <h1 data-testid="flow-title">${namespace}.${id}</h1>
        <span class="muted" data-testid="flow-revision">revision ${flow.revision}</span>
        ${flow.disabled && html`<span class="label">disabled</span>`}
        <span class="grow"></span>
        <button class="primary" data-testid="execute" onClick=${() => setRunning(true)}>Execute</button>
      </div>
      <${Tabs} tabs=${TABS} current=${tab} href=${href} />
      ${tab === "overview" && html`<${Overview} flow=${flow} />`}
      ${tab === "edit" && html`<${EditTab} flow=${flow} draft=${draft} setDraft=${setDraft} onSaved=${setSaved} />`}
      ${tab === "revisions" && html`<${Revisions} namespace=${namespace} id=${id} current=${flow.revision} />`}
      ${!TABS.some(([t]) => t === tab) && html`<p>No tab “${tab}” on a flow's page.</p>`}
      ${running && html`<${RunModal} flow=${flow} onClose=${closeRun} />`}
    </div>`;
}

// ---- overview ----

function Overview({ flow }) {
  return html`
    ${flow.description && html`<p class="flow-description">${flow.description}</p>`}
    <${Labels} labels=${Array.isArray(flow.labels) ? flow.labels : labelList(flow.labels)} />
    <div class="panel"><${Topology} flow=${flow} /></div>
    <div class="grid2">
      <div><h2>Inputs</h2><${InputsTable} inputs=${flow.inputs} /></div>
      <div><h2>Triggers</h2><${TriggersTable} triggers=${flow.triggers} /></div>
    </div>`;
}

/** Kestra also accepts labels as a map. */
function labelList(labels) {
  return labels && typeof labels === "object" ? Object.entries(labels).map(([key, value]) => ({ key, value })) : [];
}

const shown = (v) => (v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v));

function InputsTable({ inputs }) {
  if (!inputs?.length) return html`<p class="muted">No inputs.</p>`;
  return html`<table data-testid="inputs"><thead><tr><th>Id</th><th>Type</th><th>Required</th><th>Default</th><th>Description</th></tr></thead>
    <tbody>${inputs.map((i) => html`<tr key=${i.id}>
      <td class="mono">${i.id}</td><td>${i.type}</td>
      <td>${i.required === false || i.defaults !== undefined ? "no" : "yes"}</td>
      <td class="mono">${shown(i.defaults)}</td><td>${i.description || ""}</td></tr>`)}</tbody></table>`;
}

/** A trigger's settings other than its id, type and the common ones. */
function triggerDetails(trigger) {
  const { id, type, disabled, description, conditions, ...rest } = trigger;
  return Object.entries(rest).filter(([, v]) => typeof v !== "object" || v === null);
}

function TriggersTable({ triggers }) {
  if (!triggers?.length) return html`<p class="muted">No triggers.</p>`;
  return html`<table data-testid="triggers"><thead><tr><th>Id</th><th>Type</th><th>Settings</th><th>Enabled</th></tr></thead>
    <tbody>${triggers.map((t) => html`<tr key=${t.id}>
      <td class="mono">${t.id}</td><td title=${t.type}>${shortType(t.type)}</td>
      <td class="mono">${triggerDetails(t).map(([k, v]) => html`<div>${k}: ${String(v)}</div>`)}</td>
      <td>${t.disabled ? "no" : "yes"}</td></tr>`)}</tbody></table>`;
}

// ---- edit ----

function EditTab({ flow, draft, setDraft, onSaved }) {
  const [notice, setNotice] = useState(() => {
    const n = createdNotice;
    createdNotice = null;
    return n;
  });
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const text = draft ?? flow.source ?? "";
  const dirty = draft !== null && draft !== flow.source;

  const save = async () => {
    setBusy(true);
    setError(null);
    setNotice(null);
    try {
      const stored = await api.updateFlow(flow.namespace, flow.id, text);
      onSaved(stored);
      setNotice(`Saved revision ${stored.revision}.`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  return html`
    <div class="toolbar">
      <button class="primary" data-testid="save" onClick=${save} disabled=${busy}>Save</button>
      <span class="muted">${dirty ? "Unsaved changes" : `Revision ${flow.revision}`}</span>
    </div>
    ${notice && html`<div class="notice" role="status" data-testid="notice">${notice}</div>`}
    <${ErrorBox} error=${error} />
    <${FlowEditor} value=${text} onChange=${setDraft} onSave=${save} />`;
}

// ---- revisions ----

/** Every revision with its source (fetched one by one if the list has none). */
async function revisionsWithSource(namespace, id) {
  const list = await api.revisions(namespace, id);
  const full = await Promise.all(list.map((r) => (typeof r.source === "string" ? r
    : get(`/flows/${enc(namespace)}/${enc(id)}`, { revision: r.revision, source: true }))));
  return full.sort((a, b) => a.revision - b.revision);
}

function Revisions({ namespace, id, current }) {
  const revisions = useAsync(() => revisionsWithSource(namespace, id), [namespace, id, current]);
  const [pick, setPick] = useState({});
  if (revisions.error) return html`<${ErrorBox} error=${revisions.error} />`;
  if (!revisions.value) return html`<p class="muted">Loading revisions…</p>`;
  const list = revisions.value;
  const byNumber = new Map(list.map((r) => [r.revision, r]));
  const last = list[list.length - 1];
  const to = byNumber.get(pick.to) || last;
  const from = byNumber.get(pick.from) || list[Math.max(0, list.indexOf(to) - 1)];
  const choose = (side) => (e) => setPick({ from: from.revision, to: to.revision, [side]: Number(e.currentTarget.value) });
  const select = (side, value) => html`<select data-testid=${`revision-${side}`} value=${value.revision} onChange=${choose(side)}>
    ${list.map((r) => html`<option value=${r.revision}>revision ${r.revision}</option>`)}</select>`;

  return html`
    <div class="revisions">
      <table class="revision-list" data-testid="revisions">
        <thead><tr><th>Revision</th><th>Saved</th><th></th></tr></thead>
        <tbody>${[...list].reverse().map((r) => html`<tr key=${r.revision} class=${r === to || r === from ? "chosen" : ""}>
          <td>${r.revision}${r.revision === current ? html` <span class="muted">(current)</span>` : ""}</td>
          <td>${formatDate(r.updated)}</td>
          <td>${r === from ? "from" : r === to ? "to" : ""}</td></tr>`)}</tbody>
      </table>
      <div class="revision-diff">
        ${list.length < 2 ? html`<p class="muted">Only one revision: nothing to compare yet.</p>` : html`
          <div class="toolbar">Compare ${select("from", from)} with ${select("to", to)}</div>
          <${Diff} before=${from.source} after=${to.source} />`}
      </div>
    </div>`;
}
