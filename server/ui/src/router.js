// Paths as Kestra's UI has them (`/ui/main/flows/edit/{namespace}/{id}`,
// `/ui/main/executions/{namespace}/{flowId}/{id}`), so a link can be
// shared; history navigation without reloads.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";

export const ROOT = "/ui/main";

const listeners = new Set();

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  for (const l of listeners) l();
}

addEventListener("popstate", () => {
  for (const l of listeners) l();
});

/** The current location, re-rendering on navigation. */
export function useLocation() {
  const [, tick] = useState(0);
  useEffect(() => {
    const l = () => tick((n) => n + 1);
    listeners.add(l);
    return () => listeners.delete(l);
  }, []);
  return { path: location.pathname, search: new URLSearchParams(location.search) };
}

/** Matches `path` against a pattern such as `/flows/edit/:namespace/:id/:tab?`. */
export function match(pattern, path) {
  const want = pattern.split("/").filter(Boolean);
  const have = path.split("/").filter(Boolean);
  const params = {};
  for (let i = 0; i < Math.max(want.length, have.length); i++) {
    const w = want[i];
    if (w === undefined) return null;
    if (w.startsWith(":")) {
      const optional = w.endsWith("?");
      const name = w.slice(1, optional ? -1 : undefined);
      if (have[i] === undefined) {
        if (!optional) return null;
        continue;
      }
      params[name] = decodeURIComponent(have[i]);
    } else if (w !== have[i]) {
      return null;
    }
  }
  return params;
}

export const enc = encodeURIComponent;

export const links = {
  flows: () => `${ROOT}/flows`,
  newFlow: () => `${ROOT}/flows/new`,
  flow: (ns, id, tab) => `${ROOT}/flows/edit/${enc(ns)}/${enc(id)}${tab ? `/${tab}` : ""}`,
  executions: (params) => `${ROOT}/executions${params ? `?${new URLSearchParams(params)}` : ""}`,
  execution: (ns, flowId, id, tab) =>
    `${ROOT}/executions/${enc(ns)}/${enc(flowId)}/${enc(id)}${tab ? `/${tab}` : ""}`,
  triggers: () => `${ROOT}/admin/triggers`,
  engine: () => `${ROOT}/engine`,
};

/** An anchor that navigates in place (a modified click opens a tab as usual). */
export function Link({ href, children, ...rest }) {
  const onClick = (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return html`<a href=${href} onClick=${onClick} ...${rest}>${children}</a>`;
}
