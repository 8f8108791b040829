// How the executions table behaves over a large store: N executions
// (default 100,000) run to their end through the API, then the table is
// opened and paged in headless Chromium, timing each page and watching
// frame times. A measurement, not part of CI (BENCHMARKS.md gives the
// figures and this command):
//
//   node tests/big-table.mjs --bin ../../target/release/peregrine [--n 100000] [--out DIR]
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AUTH, launch, ROOT, sleep, startServer } from "./harness.mjs";

const { values: opts } = parseArgs({
  options: {
    bin: { type: "string", default: join(ROOT, "target/release/peregrine") },
    n: { type: "string", default: "100000" },
    out: { type: "string", default: join(ROOT, "target/ui-big-table") },
  },
});
const N = Number(opts.n);
const CONCURRENCY = 64;
mkdirSync(opts.out, { recursive: true });

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function seed(base) {
  const post = (path, body, type) =>
    fetch(`${base}/api/v1/main${path}`, { method: "POST", headers: { authorization: AUTH, "content-type": type }, body });
  const created = await post("/flows", "id: tiny\nnamespace: company.big\ntasks:\n  - id: r\n    type: io.kestra.plugin.core.debug.Return\n    format: ok\n", "application/x-yaml");
  if (!created.ok) throw new Error(`flow: ${created.status} ${await created.text()}`);
  let next = 0;
  const t = Date.now();
  const worker = async () => {
    while (next < N) {
      next++;
      const r = await post("/executions/company.big/tiny", "{}", "application/json");
      if (!r.ok) throw new Error(`trigger: ${r.status} ${await r.text()}`);
      await r.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return Date.now() - t;
}

async function searchMs(base, page) {
  const times = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const r = await fetch(`${base}/api/v1/main/executions/search?namespace=company.big&size=25&page=${page}`, { headers: { authorization: AUTH } });
    await r.json();
    times.push(performance.now() - t);
  }
  return median(times);
}

async function main() {
  const { browser, page, consoleErrors } = await launch();
  // Every one of them kept (by default a shard keeps its share of 100,000
  // finished executions, and the shards' shares are not exactly equal).
  const server = await startServer(opts.bin, { PEREGRINE_EXECUTIONS_MAX_FINISHED: String(2 * N) });
  try {
    const seedMs = await seed(server.base);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const r = await fetch(`${server.base}/api/v1/main/executions/search?namespace=company.big&state=SUCCESS&size=1`, { headers: { authorization: AUTH } });
      const { total } = await r.json();
      if (total >= N) break;
      if (Date.now() > deadline) throw new Error(`${total} of ${N} executions ended`);
      await sleep(200);
    }
    const lastPage = Math.ceil(N / 25);
    const api = { first: await searchMs(server.base, 1), last: await searchMs(server.base, lastPage) };

    const t0 = performance.now();
    await page.goto(`${server.base}/ui/main/executions?namespace=company.big`);
    await page.locator('[data-testid="total"]').getByText(`${N} executions`).waitFor({ timeout: 60_000 });
    const loadMs = performance.now() - t0;
    await page.evaluate(() => {
      window.__frames = [];
      let last = performance.now();
      const tick = (t) => { window.__frames.push(t - last); last = t; requestAnimationFrame(tick); };
      requestAnimationFrame(tick);
    });
    const rowOf = () => page.locator('[data-testid="executions"] tbody tr').first().getAttribute("data-execution");
    const turn = async (label) => {
      const before = await rowOf();
      const t = performance.now();
      await page.getByRole("button", { name: label }).click();
      await page.waitForFunction((b) => document.querySelector('[data-testid="executions"] tbody tr')?.dataset.execution !== b, before);
      return performance.now() - t;
    };
    const pages = [];
    for (let i = 0; i < 10; i++) pages.push(await turn("›"));
    const toLast = await turn("»");
    const toFirst = await turn("«");
    const frames = await page.evaluate(() => window.__frames.slice(1));
    frames.sort((a, b) => a - b);
    const figures = {
      executions: N,
      seed_ms: seedMs,
      search_api_ms: api,
      open_page_ms: Math.round(loadMs),
      next_page_ms_median: Math.round(median(pages)),
      last_page_ms: Math.round(toLast),
      first_page_ms: Math.round(toFirst),
      frame_ms: { p50: frames[Math.floor(frames.length / 2)], p99: frames[Math.floor(frames.length * 0.99)], max: frames[frames.length - 1] },
      console_errors: consoleErrors,
    };
    writeFileSync(join(opts.out, "big-table.json"), `${JSON.stringify(figures, null, 2)}\n`);
    await page.screenshot({ path: join(opts.out, "big-table.png") });
    console.log(JSON.stringify(figures, null, 2));
  } finally {
    await browser.close();
    await server.stop();
  }
}

await main();
