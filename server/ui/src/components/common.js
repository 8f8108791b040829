import { html } from "htm/preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { colorOf, STATES } from "../states.js";
import { Link } from "../router.js";

export function StateBadge({ state }) {
  const dark = STATES[state]?.dark;
  return html`<span class="state" data-state=${state}
    style=${`background:${colorOf(state)};color:${dark ? "#222" : "#fff"}`}>${state}</span>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${error.status ? `${error.status}: ` : ""}${error.message || String(error)}</div>`;
}

export function Tabs({ tabs, current, href }) {
  return html`<nav class="tabs">${tabs.map(
    ([id, label]) => html`<${Link} href=${href(id)} class=${current === id ? "tab active" : "tab"}>${label}</${Link}>`,
  )}</nav>`;
}

/** Runs `load` when `deps` change; `{value, error, loading, reload}`. */
export function useAsync(load, deps) {
  const [state, setState] = useState({ value: undefined, error: null, loading: true });
  const generation = useRef(0);
  const run = useCallback(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true }));
    Promise.resolve()
      .then(load)
      .then(
        (value) => mine === generation.current && setState({ value, error: null, loading: false }),
        (error) => mine === generation.current && setState({ value: undefined, error, loading: false }),
      );
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

/** Re-renders every `ms` while `on`: durations of what still runs. */
export function useTicker(ms, on = true) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!on) return undefined;
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms, on]);
  return now;
}

export function Json({ value }) {
  return html`<pre class="json">${JSON.stringify(value, null, 2)}</pre>`;
}

export function KeyValues({ map }) {
  const entries = Object.entries(map || {});
  if (!entries.length) return html`<p class="muted">None.</p>`;
  return html`<table class="kv"><tbody>${entries.map(
    ([k, v]) => html`<tr><th>${k}</th><td>${typeof v === "object" && v !== null ? html`<${Json} value=${v} />` : String(v)}</td></tr>`,
  )}</tbody></table>`;
}

export function Labels({ labels }) {
  if (!labels?.length) return null;
  return html`<span class="labels">${labels.map((l) => html`<span class="label">${l.key}:${l.value}</span>`)}</span>`;
}
