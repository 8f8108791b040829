// Flows by namespace, with search.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { api } from "../api.js";
import { ErrorBox, Labels, useAsync } from "../components/common.js";
import { Link, links, navigate, useLocation } from "../router.js";

const SIZE = 50;

export function FlowsPage() {
  const { search } = useLocation();
  const q = search.get("q") || "";
  const namespace = search.get("namespace") || "";
  const page = Math.max(1, Number(search.get("page")) || 1);
  const [typed, setTyped] = useState(q);
  const flows = useAsync(
    () => api.flows({ q, namespace, page, size: SIZE, sort: "id:asc" }),
    [q, namespace, page],
  );
  const namespaces = useAsync(async () => {
    const all = await api.flows({ size: 1000 });
    return [...new Set(all.results.map((f) => f.namespace))].sort();
  }, []);
  const go = (changes) => {
    const next = new URLSearchParams({ q, namespace, page: String(page), ...changes });
    for (const [k, v] of [...next]) if (!v || (k === "page" && v === "1")) next.delete(k);
    navigate(`${links.flows()}${next.size ? `?${next}` : ""}`);
  };
  const results = flows.value?.results || [];
  const total = flows.value?.total || 0;
  const byNamespace = Map.groupBy ? Map.groupBy(results, (f) => f.namespace) : group(results);
  return html`
    <div class="toolbar">
      <h1 class="grow">Flows</h1>
      <${Link} href=${links.newFlow()}><button class="primary">Create</button></${Link}>
    </div>
    <form class="toolbar" onSubmit=${(e) => { e.preventDefault(); go({ q: typed, page: "1" }); }}>
      <input type="search" placeholder="Search flows" value=${typed} aria-label="Search flows"
        onInput=${(e) => setTyped(e.currentTarget.value)} />
      <select aria-label="Namespace" value=${namespace} onChange=${(e) => go({ namespace: e.currentTarget.value, page: "1" })}>
        <option value="">All namespaces</option>
        ${(namespaces.value || []).map((n) => html`<option value=${n}>${n}</option>`)}
      </select>
      <button type="submit">Search</button>
      <span class="muted">${total} flow${total === 1 ? "" : "s"}</span>
    </form>
    <${ErrorBox} error=${flows.error} />
    ${[...byNamespace].map(([ns, list]) => html`
      <div class="panel">
        <h2>${ns}</h2>
        <table><thead><tr><th>Id</th><th>Revision</th><th>Labels</th><th>Triggers</th><th>Description</th></tr></thead>
        <tbody>${list.map((f) => html`
          <tr data-flow=${`${f.namespace}.${f.id}`}>
            <td><${Link} href=${links.flow(f.namespace, f.id)}>${f.id}</${Link}>${f.disabled ? html` <span class="muted">(disabled)</span>` : null}</td>
            <td>${f.revision}</td>
            <td><${Labels} labels=${labelList(f.labels)} /></td>
            <td>${(f.triggers || []).map((t) => t.type.split(".").pop()).join(", ")}</td>
            <td class="muted">${f.description || ""}</td>
          </tr>`)}
        </tbody></table>
      </div>`)}
    ${!flows.loading && !results.length ? html`<p class="muted">No flow found.</p>` : null}
    <${Pager} page=${page} size=${SIZE} total=${total} onPage=${(p) => go({ page: String(p) })} />`;
}

function group(list) {
  const m = new Map();
  for (const f of list) m.set(f.namespace, [...(m.get(f.namespace) || []), f]);
  return m;
}

/** Kestra gives labels as a list of {key, value} or, in YAML, a map. */
export function labelList(labels) {
  if (!labels) return [];
  if (Array.isArray(labels)) return labels;
  return Object.entries(labels).map(([key, value]) => ({ key, value: String(value) }));
}

export function Pager({ page, size, total, onPage }) {
  const last = Math.max(1, Math.ceil(total / size));
  if (last <= 1) return null;
  return html`<div class="pager">
    <button disabled=${page <= 1} onClick=${() => onPage(1)}>«</button>
    <button disabled=${page <= 1} onClick=${() => onPage(page - 1)}>‹</button>
    <span>page ${page} of ${last}</span>
    <button disabled=${page >= last} onClick=${() => onPage(page + 1)}>›</button>
    <button disabled=${page >= last} onClick=${() => onPage(last)}>»</button>
  </div>`;
}
