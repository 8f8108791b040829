// Executions: a page of the search, kept live by the server's stream of
// every change in brief (`/api/peregrine/executions/follow`, the same
// filters). The server gathers changes into one event per 200 ms, and the
// table only ever holds one page, so a thousand executions running at once
// cost a few small renders a second, and 100,000 in the store cost nothing
// until paged to.
import { html } from "htm/preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, follow, query } from "../api.js";
import { ErrorBox, Labels, StateBadge, useTicker } from "../components/common.js";
import { Link, links, navigate, useLocation } from "../router.js";
import { isTerminal, STATE_NAMES } from "../states.js";
import { formatDate, humanDuration, stateDuration } from "../time.js";
import { Pager } from "./flows.js";

const SIZES = [25, 50, 100];

/** The filters as the URL and the API both spell them. */
function readFilters(search) {
  return {
    namespace: search.get("namespace") || "",
    flowId: search.get("flowId") || "",
    state: search.getAll("state"),
    labels: search.getAll("labels"),
    startDate: search.get("startDate") || "",
    endDate: search.get("endDate") || "",
  };
}

export function ExecutionsPage() {
  const { search } = useLocation();
  const filters = readFilters(search);
  const page = Math.max(1, Number(search.get("page")) || 1);
  const size = SIZES.includes(Number(search.get("size"))) ? Number(search.get("size")) : 25;
  const key = query({ ...filters, page, size });
  const filterKey = query(filters);
  // One state: a live change adds rows and counts them in one pure update.
  const [{ rows, total }, setPage] = useState({ rows: [], total: 0 });
  const [error, setError] = useState(null);
  const [loaded, setLoaded] = useState(false);
  const [live, setLive] = useState({ connected: false, events: 0 });
  const reloads = useRef(0);

  const load = () => {
    const mine = ++reloads.current;
    api.executions({ ...filters, page, size, sort: "state.startDate:desc" }).then(
      (r) => {
        if (mine !== reloads.current) return;
        setPage({ rows: r.results.map(brief), total: r.total });
        setError(null);
        setLoaded(true);
      },
      (e) => mine === reloads.current && setError(e),
    );
  };
  useEffect(load, [key]);

  // Live changes: update the rows shown; on the first page, put new
  // executions on top (newest first, as the search sorts).
  useEffect(() => {
    let missedTimer = null;
    const stop = follow(`/api/peregrine/executions/follow?${filterKey}`, {
      open: () => setLive((l) => ({ ...l, connected: true })),
      changes: (data) => {
        const changes = JSON.parse(data);
        setLive((l) => ({ connected: true, events: l.events + 1 }));
        setPage((current) => {
          const { rows: next, added } = merge(current.rows, changes, page === 1, size);
          return { rows: next, total: current.total + added };
        });
      },
      missed: () => {
        // Fell behind the server's ring: read the page again, at most
        // once a second.
        if (missedTimer) return;
        missedTimer = setTimeout(() => { missedTimer = null; load(); }, 1000);
      },
      error: () => setLive((l) => ({ ...l, connected: false })),
    });
    return () => { stop(); clearTimeout(missedTimer); };
  }, [key]);

  const running = rows.some((r) => !isTerminal(r.state.current));
  const now = useTicker(1000, running);
  const go = (changes) => {
    const next = new URLSearchParams(query({ ...filters, page, size, ...changes }));
    if (next.get("page") === "1") next.delete("page");
    if (next.get("size") === "25") next.delete("size");
    navigate(`${links.executions()}${next.size ? `?${next}` : ""}`);
  };

  return html`
    <div class="toolbar"><h1 class="grow">Executions</h1>
      <span class="muted" data-testid="live">${live.connected ? "● live" : "○ connecting"}</span>
    </div>
    <${FilterBar} filters=${filters} onApply=${(f) => go({ ...f, page: 1 })} />
    <${ErrorBox} error=${error} />
    <table data-testid="executions">
      <thead><tr><th>Id</th><th>Start date</th><th>End date</th><th>Duration</th><th>Namespace</th><th>Flow</th><th>Labels</th><th>State</th></tr></thead>
      <tbody>${rows.map((e) => html`<${Row} key=${e.id} e=${e} now=${now} />`)}</tbody>
    </table>
    ${loaded && !rows.length ? html`<p class="muted">No execution found.</p>` : null}
    <div class="pager">
      <span class="muted" data-testid="total">${total} execution${total === 1 ? "" : "s"}</span>
      <select aria-label="Page size" value=${size} onChange=${(e) => go({ size: e.currentTarget.value, page: 1 })}>
        ${SIZES.map((s) => html`<option value=${s}>${s} per page</option>`)}
      </select>
    </div>
    <${Pager} page=${page} size=${size} total=${total} onPage=${(p) => go({ page: p })} />`;
}

/** The fields a row shows, from a search result or a brief. */
function brief(e) {
  return { id: e.id, namespace: e.namespace, flowId: e.flowId, labels: e.labels || [], state: e.state };
}

/** `current` with `changes` applied; new executions on top when `onTop`. */
export function merge(current, changes, onTop, size) {
  const index = new Map(current.map((r, i) => [r.id, i]));
  const next = current.slice();
  const fresh = [];
  for (const c of changes) {
    const i = index.get(c.id);
    if (i !== undefined) next[i] = brief(c);
    else if (onTop) fresh.push(brief(c));
  }
  if (!fresh.length) return { rows: next, added: 0 };
  fresh.sort((a, b) => Date.parse(b.state.startDate) - Date.parse(a.state.startDate));
  return { rows: fresh.concat(next).slice(0, size), added: fresh.length };
}

const Row = ({ e, now }) => html`
  <tr data-execution=${e.id} data-flow-id=${e.flowId} data-state=${e.state.current}>
    <td class="mono"><${Link} href=${links.execution(e.namespace, e.flowId, e.id)}>${e.id.slice(0, 8)}</${Link}></td>
    <td>${formatDate(e.state.startDate)}</td>
    <td>${formatDate(e.state.endDate)}</td>
    <td>${humanDuration(stateDuration(e.state, now))}</td>
    <td>${e.namespace}</td>
    <td><${Link} href=${links.flow(e.namespace, e.flowId)}>${e.flowId}</${Link}></td>
    <td><${Labels} labels=${e.labels} /></td>
    <td><${StateBadge} state=${e.state.current} /></td>
  </tr>`;

function FilterBar({ filters, onApply }) {
  const [f, setF] = useState(filters);
  useEffect(() => setF(filters), [query(filters)]);
  const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.value });
  const local = (iso) => (iso ? toLocalInput(iso) : "");
  const states = useMemo(() => new Set(f.state), [f.state]);
  return html`
    <form class="toolbar panel" onSubmit=${(e) => { e.preventDefault(); onApply(f); }}>
      <input placeholder="Namespace" aria-label="Namespace" name="namespace" value=${f.namespace} onInput=${set("namespace")} />
      <input placeholder="Flow id" aria-label="Flow" name="flowId" value=${f.flowId} onInput=${set("flowId")} />
      <select multiple size="3" aria-label="State" name="state" onChange=${(e) =>
        setF({ ...f, state: [...e.currentTarget.selectedOptions].map((o) => o.value) })}>
        ${STATE_NAMES.map((s) => html`<option value=${s} selected=${states.has(s)}>${s}</option>`)}
      </select>
      <input placeholder="label key:value" aria-label="Labels" name="labels" value=${f.labels.join(" ")}
        onInput=${(e) => setF({ ...f, labels: e.currentTarget.value.split(/\s+/).filter(Boolean) })} />
      <label>from <input type="datetime-local" aria-label="Started after" value=${local(f.startDate)}
        onInput=${(e) => setF({ ...f, startDate: fromLocalInput(e.currentTarget.value) })} /></label>
      <label>to <input type="datetime-local" aria-label="Started before" value=${local(f.endDate)}
        onInput=${(e) => setF({ ...f, endDate: fromLocalInput(e.currentTarget.value) })} /></label>
      <button type="submit" class="primary">Filter</button>
      <button type="button" onClick=${() => onApply({ namespace: "", flowId: "", state: [], labels: [], startDate: "", endDate: "" })}>Clear</button>
    </form>`;
}

/** An instant as a `datetime-local` input shows it: the user's zone. */
function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}
