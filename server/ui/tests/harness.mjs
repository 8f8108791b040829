// What the browser tests share: the real server on a free loopback port
// (basic auth on), the API as another service calls it, and Debian's
// Chromium driven by playwright-core.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

export const ROOT = resolve(new URL("../../..", import.meta.url).pathname);

export const USER = "ui-tester";
export const PASSWORD = "a secret of the test";
export const AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** `peregrine server` from `bin` on a fresh data folder; `env` added. */
export async function startServer(bin, env = {}) {
  const port = await freePort();
  const data = mkdtempSync(join(tmpdir(), "peregrine-ui-"));
  const log = [];
  const child = spawn(bin, ["server", "--bind", `127.0.0.1:${port}`, "--data-dir", data], {
    env: {
      ...process.env,
      PEREGRINE_SERVER_BASIC_AUTH_USERNAME: USER,
      PEREGRINE_SERVER_BASIC_AUTH_PASSWORD: PASSWORD,
      RUST_LOG: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.on("data", (d) => log.push(String(d)));
  child.stderr.on("data", (d) => log.push(String(d)));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited:\n${log.join("")}`);
    try {
      if ((await fetch(`${base}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the server did not start:\n${log.join("")}`);
    await sleep(100);
  }
  return {
    base,
    log,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((ok) => (child.exitCode !== null ? ok() : child.once("exit", ok)));
      rmSync(data, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** The API, outside the browser, as another service would call it. */
export function apiOf(base) {
  const call = async (method, path, body, type) => {
    const headers = { authorization: AUTH };
    if (body !== undefined && !(body instanceof FormData)) headers["content-type"] = type || "application/json";
    const r = await fetch(`${base}/api/v1/main${path}`, { method, headers, body });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  return {
    createFlow: (yaml) => call("POST", "/flows", yaml, "application/x-yaml"),
    trigger: (ns, id, inputs = {}) => {
      const form = new FormData();
      for (const [k, v] of Object.entries(inputs)) form.append(k, v);
      return call("POST", `/executions/${ns}/${id}`, form);
    },
    execution: (id) => call("GET", `/executions/${id}`),
    kill: (id) => call("DELETE", `/executions/${id}/kill`),
    putKv: (ns, key, value) => call("PUT", `/namespaces/${ns}/kv/${key}`, JSON.stringify(value)),
    search: (query) => call("GET", `/executions/search?${new URLSearchParams(query)}`),
  };
}

/** Chromium with a fresh profile (Playwright makes one), and a page with
 * the test's credentials whose console errors are collected. */
export async function launch({ timezoneId, locale = "en-US" } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const context = await browser.newContext({
    viewport: { width: 1400, height: 900 },
    timezoneId,
    locale,
    httpCredentials: { username: USER, password: PASSWORD },
  });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(`${page.url()}: ${m.text()}`); });
  page.on("pageerror", (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
  page.setDefaultTimeout(15_000);
  return { browser, page, consoleErrors };
}
