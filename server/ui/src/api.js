// The server's HTTP API, as the UI calls it. Same origin: the browser
// sends the credentials it was asked for at /ui with every call.

export const BASE = "/api/v1/main";

/** An answer that was not 2xx: its status and Kestra's message. */
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

async function call(method, path, { body, type, query: params } = {}) {
  let url = path.startsWith("/") && !path.startsWith(BASE) && !path.startsWith("/api/") ? BASE + path : path;
  const q = params ? query(params) : "";
  if (q) url += (url.includes("?") ? "&" : "?") + q;
  const headers = {};
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["content-type"] = type || "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(url, { method, headers, body: payload });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const message = (json && (json.message || json.error)) || text || response.statusText;
    throw new ApiError(response.status, message, json);
  }
  return json ?? text;
}

export const get = (path, query) => call("GET", path, { query });
export const post = (path, body, opts = {}) => call("POST", path, { body, ...opts });
export const put = (path, body, opts = {}) => call("PUT", path, { body, ...opts });
export const del = (path, query) => call("DELETE", path, { query });

const enc = encodeURIComponent;

export const api = {
  flows: (query) => get("/flows/search", query),
  flow: (ns, id) => get(`/flows/${enc(ns)}/${enc(id)}`, { source: true }),
  revisions: (ns, id) => get(`/flows/${enc(ns)}/${enc(id)}/revisions`),
  createFlow: (yaml) => post("/flows", yaml, { type: "application/x-yaml" }),
  updateFlow: (ns, id, yaml) => put(`/flows/${enc(ns)}/${enc(id)}`, yaml, { type: "application/x-yaml" }),
  validate: (yaml) => post("/flows/validate", yaml, { type: "application/x-yaml" }),
  executions: (query) => get("/executions/search", query),
  execution: (id) => get(`/executions/${enc(id)}`),
  trigger: (ns, id, form) => post(`/executions/${enc(ns)}/${enc(id)}`, form),
  kill: (id) => del(`/executions/${enc(id)}/kill`),
  // The `actions/` paths: the older `{id}/resume` also names a flow.
  resume: (id, form) => post(`/executions/${enc(id)}/actions/resume`, form ?? new FormData()),
  restart: (id) => post(`/executions/${enc(id)}/actions/restart`, undefined),
  replay: (id, taskRunId) =>
    post(`/executions/${enc(id)}/actions/replay`, undefined, { query: taskRunId ? { taskRunId } : undefined }),
  triggers: (query) => get("/triggers/search", query),
  setTriggerDisabled: (trigger, disabled) =>
    post("/triggers/set-disabled/by-triggers", { triggers: [trigger], disabled }),
};

/** Follows `url` over Server-Sent Events; returns a function that stops it. */
export function follow(url, handlers) {
  const source = new EventSource(url);
  for (const [event, handler] of Object.entries(handlers)) {
    if (event === "error") source.onerror = handler;
    else source.addEventListener(event, (e) => handler(e.data, e));
  }
  return () => source.close();
}

/** A query string of `params`: empty values left out, lists repeated. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, String(one));
  }
  return q.toString();
}
