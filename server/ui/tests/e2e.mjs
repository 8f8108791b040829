// The web UI in a real headless Chromium against a real server on
// loopback: each step drives the pages as a user would, saves a
// screenshot, and fails on any console error.
//
//   node tests/e2e.mjs [--bin PATH] [--out DIR] [--only REGEX]
//
// PATH: the `peregrine` binary (default target/debug/peregrine from the
// workspace root); DIR: where screenshots and figures go (default
// target/ui-e2e). Chromium: /usr/bin/chromium, or $CHROMIUM.
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { apiOf, AUTH, launch, ROOT, sleep, startServer } from "./harness.mjs";

const { values: opts } = parseArgs({
  options: {
    bin: { type: "string", default: join(ROOT, "target/debug/peregrine") },
    out: { type: "string", default: join(ROOT, "target/ui-e2e") },
    only: { type: "string" },
  },
});
const STEP_MS = 60_000;
/** Not UTC, and a half-hour offset: a date shown in UTC would not pass. */
const ZONE = "Asia/Kolkata";

mkdirSync(opts.out, { recursive: true });

// ---------------------------------------------------------------- steps

const steps = [];
const step = (name, run) => steps.push({ name, run });

async function shot(page, name) {
  await page.screenshot({ path: join(opts.out, `${name}.png`), fullPage: true });
}

/** Replaces the editor's text by typing, as a user would. */
async function typeInEditor(page, text) {
  const content = page.locator('[data-testid="flow-editor"] .cm-content');
  await content.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  // CodeMirror indents after a newline: insert the text as one paste.
  await page.evaluate((t) => {
    const el = document.querySelector('[data-testid="flow-editor"] .cm-content');
    const data = new DataTransfer();
    data.setData("text/plain", t);
    el.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  }, text);
}

/** The input and the first task both flows have. */
const GREETING = `inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: greet
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.name }}"
`;

const BAD_FLOW = `id: hello
namespace: company.team
${GREETING}  - id: nope
    type: io.kestra.plugin.nowhere.Thing
`;

const GOOD_FLOW = `id: hello
namespace: company.team
description: Greets, waits a little, and answers
${GREETING}  - id: wait
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1.5S
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b", "c"]
    tasks:
      - id: echo
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
  - id: answer
    type: io.kestra.plugin.core.debug.Return
    format: "hi {{ inputs.name }}"
`;

step("the root redirects to the UI, which asks for credentials", async ({ server }) => {
  const bare = await fetch(`${server.base}/ui/main/executions`);
  assert.equal(bare.status, 401, "the UI is behind the API's auth");
  assert.match(bare.headers.get("www-authenticate") || "", /^Basic /);
  const root = await fetch(`${server.base}/`, { redirect: "manual" });
  assert.equal(root.status, 303);
  assert.equal(root.headers.get("location"), "/ui/");
  const asset = await fetch(`${server.base}/ui/assets/missing-file.js`, { headers: { authorization: AUTH } });
  assert.equal(asset.status, 404, "a missing asset is not the app");
});

step("a flow is written in the editor; a bad task type is marked on its line", async ({ page, server }) => {
  await page.goto(`${server.base}/`);
  await page.waitForURL(/\/ui\/main\/executions/);
  await page.goto(`${server.base}/ui/main/flows/new`);
  await page.locator('[data-testid="flow-editor"] .cm-content').waitFor();
  await typeInEditor(page, BAD_FLOW);
  const problems = page.locator('[data-testid="problems"]');
  await problems.getByText(/unknown task type/).waitFor({ timeout: 10_000 });
  const text = await problems.innerText();
  assert.match(text, /line 12/, `the problem is on line 12: ${text}`);
  assert.match(text, /tasks\[1\]\.type/);
  // CodeMirror's own marker sits on that line.
  const marked = page.locator(".cm-line", { has: page.locator(".cm-lintRange-error") });
  await marked.first().waitFor();
  assert.match(await marked.first().innerText(), /io\.kestra\.plugin\.nowhere\.Thing/);
  await shot(page, "01-editor-validation");

  await typeInEditor(page, GOOD_FLOW);
  await page.waitForFunction(() => !document.querySelector('[data-testid="problems"] li'), null, { timeout: 10_000 });
  await page.locator('[data-testid="save"]').click();
  await page.waitForURL(/\/ui\/main\/flows\/edit\/company\.team\/hello/);
  await page.goto(`${server.base}/ui/main/flows/edit/company.team/hello`);
  const topology = page.locator('[data-testid="topology"]');
  await topology.waitFor();
  for (const task of ["greet", "wait", "each", "echo", "answer"]) {
    assert.equal(await topology.locator(`[data-task="${task}"]`).count(), 1, `task ${task} in the graph`);
  }
  await shot(page, "02-flow-topology");
});

step("the topology nests flowables, draws Dag edges, errors and finally", async ({ page, server, api }) => {
  await api.createFlow(`id: shapes
namespace: company.team
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: left
        type: io.kestra.plugin.core.log.Log
        message: l
      - id: right
        type: io.kestra.plugin.core.log.Log
        message: r
  - id: dag
    type: io.kestra.plugin.core.flow.Dag
    tasks:
      - task:
          id: a
          type: io.kestra.plugin.core.log.Log
          message: a
      - task:
          id: b
          type: io.kestra.plugin.core.log.Log
          message: b
        dependsOn: [a]
      - task:
          id: c
          type: io.kestra.plugin.core.log.Log
          message: c
        dependsOn: [a]
      - task:
          id: d
          type: io.kestra.plugin.core.log.Log
          message: d
        dependsOn: [b, c, a]
errors:
  - id: alert
    type: io.kestra.plugin.core.log.Log
    message: failed
finally:
  - id: cleanup
    type: io.kestra.plugin.core.log.Log
    message: done
`);
  await page.goto(`${server.base}/ui/main/flows/edit/company.team/shapes`);
  const graph = page.locator('[data-testid="topology"]');
  await graph.waitFor();
  const fan = graph.locator('[data-task="fan"]');
  for (const inner of ["left", "right"]) {
    assert.equal(await fan.locator(`[data-task="${inner}"]`).count(), 1, `${inner} inside the Parallel`);
  }
  const [l, r] = await Promise.all(["left", "right"].map((t) => fan.locator(`[data-task="${t}"]`).boundingBox()));
  assert.ok(Math.abs(l.y - r.y) < 1 && l.x !== r.x, "a Parallel's tasks side by side");
  const edges = await graph.locator("[data-edge]").evaluateAll((es) => es.map((e) => e.dataset.edge).sort());
  assert.deepEqual(edges, ["a->b", "a->c", "a->d", "b->d", "c->d"]);
  const [a, b, d] = await Promise.all(["a", "b", "d"].map((t) => graph.locator(`[data-task="${t}"]`).boundingBox()));
  assert.ok(a.y < b.y && b.y < d.y, "a Dag laid out by dependency depth");
  assert.equal(await graph.locator('[data-branch="errors"] [data-task="alert"]').count(), 1);
  assert.equal(await graph.locator('[data-branch="finally"] [data-task="cleanup"]').count(), 1);
  await shot(page, "03-flow-topology-shapes");
});

step("the flows list finds it by search", async ({ page, server }) => {
  await page.goto(`${server.base}/ui/main/flows`);
  await page.locator('[data-flow="company.team.hello"]').waitFor();
  await page.getByLabel("Search flows").fill("nothing-like-it");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("No flow found.").waitFor();
  await page.getByLabel("Search flows").fill("hel");
  await page.getByRole("button", { name: "Search" }).click();
  await page.locator('[data-flow="company.team.hello"]').waitFor();
  await shot(page, "03-flows");
});

step("run from the form; the execution reaches SUCCESS live, without a reload", async ({ page, server }) => {
  await page.goto(`${server.base}/ui/main/flows/edit/company.team/hello`);
  await page.getByRole("button", { name: "Execute" }).first().click();
  const input = page.locator('.modal [name="name"]');
  await input.waitFor();
  assert.equal(await input.inputValue(), "world", "the input's default is filled in");
  await input.fill("Ada");
  await shot(page, "04-run-form");
  await page.locator('[data-testid="run-submit"]').click();
  await page.waitForURL(/\/ui\/main\/executions\/company\.team\/hello\/[\w-]+/);
  await page.evaluate(() => { window.__notReloaded = true; });
  const state = page.locator('[data-testid="execution-state"] .state');
  await page.waitForFunction(() => document.querySelector('[data-testid="execution-state"] .state')?.textContent === "RUNNING", null, { timeout: 10_000 });
  // The Gantt follows too: the sleep's bar while it runs, then the end.
  await page.getByRole("link", { name: "Gantt" }).click();
  const gantt = page.locator('[data-testid="gantt"]');
  await gantt.locator('[data-task="wait"][data-state="RUNNING"]').waitFor({ timeout: 10_000 });
  await gantt.locator('[data-task="answer"][data-state="SUCCESS"]').waitFor({ timeout: 20_000 });
  await state.getByText("SUCCESS").waitFor({ timeout: 20_000 });
  assert.equal(await page.evaluate(() => window.__notReloaded), true, "no reload on the way");
  await page.getByRole("link", { name: "Overview" }).click();
  const history = await page.locator('[data-testid="state-history"]').innerText();
  assert.match(history, /CREATED[\s\S]*RUNNING[\s\S]*SUCCESS/);
  await shot(page, "05-execution-overview");

  await page.getByRole("link", { name: "Gantt" }).click();
  await gantt.waitFor();
  for (const task of ["greet", "wait", "each", "answer"]) {
    assert.equal(await gantt.locator(`[data-task="${task}"]`).count(), 1, `a bar for ${task}`);
  }
  assert.equal(await gantt.locator("[data-group]").count(), 3, "ForEach iterations grouped by value");
  assert.equal(await gantt.locator('[data-task="echo"]').count(), 3, "one run of echo per value");
  await gantt.locator('[data-group="b"] .name').click();
  assert.equal(await gantt.locator('[data-task="echo"]').count(), 2, "a value's group folds");
  await gantt.locator('[data-task="answer"] .name').click();
  await page.locator('[data-testid="task-outputs"]').getByText("hi Ada").waitFor();
  await shot(page, "06-execution-gantt");

  await page.getByRole("link", { name: "Outputs" }).click();
  await page.locator('[data-outputs-of="answer"]').getByText("hi Ada").waitFor();
  await page.getByRole("link", { name: "Logs" }).click();
  await page.locator('[data-testid="logs"]').getByText("hello Ada").waitFor();
  await shot(page, "07-execution-logs");
});

step("a sleeping execution is killed from its page", async ({ page, server, api }) => {
  await api.createFlow(`id: sleeper\nnamespace: company.team\ntasks:\n  - id: nap\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT60S\n`);
  const started = await api.trigger("company.team", "sleeper");
  await page.goto(`${server.base}/ui/main/executions/company.team/sleeper/${started.id}`);
  await page.locator('[data-testid="execution-state"]').getByText("RUNNING").waitFor({ timeout: 10_000 });
  await page.locator('[data-testid="kill"]').click();
  await page.locator('[data-testid="execution-state"]').getByText("KILLED").waitFor({ timeout: 10_000 });
  assert.equal((await api.execution(started.id)).state.current, "KILLED");
  await shot(page, "08-execution-killed");
});

step("a paused execution is resumed, a failed one restarted, an ended one replayed", async ({ page, server, api }) => {
  await api.createFlow(`id: gate\nnamespace: company.team\ntasks:\n  - id: hold\n    type: io.kestra.plugin.core.flow.Pause\n  - id: after\n    type: io.kestra.plugin.core.debug.Return\n    format: resumed\n`);
  const paused = await api.trigger("company.team", "gate");
  await page.goto(`${server.base}/ui/main/executions/company.team/gate/${paused.id}`);
  await page.locator('[data-testid="execution-state"]').getByText("PAUSED").waitFor({ timeout: 10_000 });
  await page.locator('[data-testid="resume"]').click();
  await page.locator('[data-testid="execution-state"]').getByText("SUCCESS").waitFor({ timeout: 10_000 });

  // Fails while the KV key is missing; restarted once it is there.
  await api.createFlow(`id: flaky\nnamespace: company.team\ntasks:\n  - id: read\n    type: io.kestra.plugin.core.debug.Return\n    format: "{{ kv('ready') }}"\n`);
  const failed = await api.trigger("company.team", "flaky");
  await page.goto(`${server.base}/ui/main/executions/company.team/flaky/${failed.id}`);
  await page.locator('[data-testid="execution-state"]').getByText("FAILED").waitFor({ timeout: 10_000 });
  await api.putKv("company.team", "ready", "yes");
  await page.locator('[data-testid="restart"]').click();
  await page.locator('[data-testid="execution-state"]').getByText("SUCCESS").waitFor({ timeout: 10_000 });
  const history = await page.locator('[data-testid="state-history"]').innerText();
  assert.match(history, /FAILED[\s\S]*RESTARTED[\s\S]*SUCCESS/, history);

  await page.locator('[data-testid="replay"]').click();
  const link = page.locator(".notice a");
  await link.waitFor();
  const replayed = (await link.innerText()).trim();
  assert.notEqual(replayed, failed.id);
  await link.click();
  await page.waitForURL(new RegExp(`/executions/company\\.team/flaky/${replayed}$`));
  await page.locator('[data-testid="execution-state"]').getByText("SUCCESS").waitFor({ timeout: 10_000 });
  await shot(page, "09-execution-replayed");
});

step("the executions table follows new executions live", async ({ page, server, api }) => {
  await page.goto(`${server.base}/ui/main/executions?flowId=hello`);
  await page.locator('[data-testid="live"]').getByText("live").waitFor();
  const before = await page.locator('[data-testid="executions"] tbody tr').count();
  // Another flow's execution changes meanwhile: the filter keeps it out.
  const other = await api.trigger("company.team", "sleeper");
  const started = await api.trigger("company.team", "hello", { name: "Grace" });
  const row = page.locator(`[data-execution="${started.id}"]`);
  await row.waitFor({ timeout: 10_000 });
  await page.locator(`[data-execution="${started.id}"][data-state="SUCCESS"]`).waitFor({ timeout: 20_000 });
  assert.equal(await page.locator('[data-testid="executions"] tbody tr').count(), before + 1);
  assert.equal(await page.locator('[data-execution][data-flow-id="sleeper"]').count(), 0);
  assert.equal(await page.locator('[data-execution][data-flow-id="hello"]').count(), before + 1);
  await api.kill(other.id);
  await shot(page, "09-executions");
});

step("the executions table filters by state and flow from its form", async ({ page, server }) => {
  await page.goto(`${server.base}/ui/main/executions`);
  await page.locator('[data-testid="executions"] tbody tr').first().waitFor();
  await page.getByLabel("State").selectOption(["KILLED"]);
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/state=KILLED/);
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('[data-testid="executions"] tbody tr')];
    return rows.length > 0 && rows.every((r) => r.dataset.state === "KILLED");
  });
  await page.getByLabel("Flow").fill("hello");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/flowId=hello/);
  await page.getByText("No execution found.").waitFor();
  await page.getByRole("button", { name: "Clear" }).click();
  await page.waitForFunction(() => !location.search);
  // Started within the last hour: all of them; from an hour on: none.
  // A `datetime-local` value is the wall time in the page's zone.
  const wall = new Intl.DateTimeFormat("sv-SE", {
    timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  });
  const local = (ms) => wall.format(new Date(ms)).replace(" ", "T");
  await page.getByLabel("Started after").fill(local(Date.now() - 3600_000));
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/startDate=/);
  await page.locator('[data-testid="executions"] tbody tr').first().waitFor();
  await page.getByLabel("Started after").fill(local(Date.now() + 3600_000));
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByText("No execution found.").waitFor();
  await page.getByRole("button", { name: "Clear" }).click();
  await page.waitForFunction(() => !location.search);
  await page.locator('[data-testid="executions"] tbody tr[data-flow-id="hello"]').first().waitFor();
});

step("revisions show what changed", async ({ page, server }) => {
  await page.goto(`${server.base}/ui/main/flows/edit/company.team/hello/edit`);
  await page.locator('[data-testid="flow-editor"] .cm-content').waitFor();
  await typeInEditor(page, GOOD_FLOW.replace("Greets, waits a little, and answers", "Greets and answers"));
  await page.waitForFunction(() => !document.querySelector('[data-testid="problems"] li'));
  await page.locator('[data-testid="save"]').click();
  await page.getByText(/revision 2/i).first().waitFor({ timeout: 10_000 });
  await page.getByRole("link", { name: "Revisions" }).click();
  const diff = page.locator('[data-testid="diff"]');
  await diff.locator(".add").getByText("Greets and answers").waitFor();
  await diff.locator(".del").getByText("Greets, waits a little, and answers").waitFor();
  await shot(page, "10-revisions");
});

step("a schedule is listed with its next date, and disabled from the triggers page", async ({ page, server, api }) => {
  await api.createFlow(`id: nightly\nnamespace: company.team\ntasks:\n  - id: hi\n    type: io.kestra.plugin.core.log.Log\n    message: hi\ntriggers:\n  - id: every-night\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: "0 2 * * *"\n`);
  await page.goto(`${server.base}/ui/main/admin/triggers`);
  const row = page.locator('[data-trigger="company.team.nightly.every-night"]');
  await row.waitFor();
  assert.match(await row.innerText(), /\d{2}:\d{2}:\d{2}/, "a next fire date");
  await row.getByLabel("Enabled").click();
  await row.getByText("off").waitFor();
  await row.getByText("disabled").waitFor();
  await shot(page, "11-triggers");
});

step("the engine page plots the server's figures", async ({ page, server, api }) => {
  await api.createFlow(`id: pulse\nnamespace: company.team\ntasks:\n  - id: nap\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT1.5S\n`);
  await page.goto(`${server.base}/ui/main/engine`);
  for (let i = 0; i < 5; i++) await api.trigger("company.team", "pulse");
  // Lines of several samples, and a latency from executions that ended
  // between two scrapes.
  await page.waitForFunction(() => Number(document.querySelector("[data-samples]")?.dataset.samples) >= 3
    && document.querySelectorAll("svg.chart path[d*='L']").length >= 4, null, { timeout: 15_000 });
  await page.waitForFunction(() => /^\d/.test(document.querySelector('[data-testid="latency"] .big')?.textContent || ""),
    null, { timeout: 15_000 });
  const p99 = Number.parseFloat(await page.locator('[data-testid="latency"] .big').innerText());
  assert.ok(p99 >= 1000 && p99 <= 60_000, `the p99 of 1.5 s executions reads ${p99} ms`);
  assert.match(await page.locator('[data-testid="running"] .big').innerText(), /^\d+$/);
  await shot(page, "12-engine");
});

step("dates are in the user's time zone", async ({ page, server, api }) => {
  const found = await api.search({ flowId: "hello", size: 1 });
  const e = found.results[0];
  await page.goto(`${server.base}/ui/main/executions/company.team/hello/${e.id}`);
  // Chromium names the zone by its older alias.
  await page.locator(".zone").getByText(/Asia\/(Kolkata|Calcutta)/).waitFor();
  const local = new Intl.DateTimeFormat("en-US", {
    timeZone: ZONE, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(new Date(e.state.startDate));
  const created = await page.locator("tr", { has: page.locator("th", { hasText: /^Created$/ }) }).innerText();
  assert.ok(created.includes(local), `${created} shows ${e.state.startDate} in ${ZONE} (${local})`);
});

step("1,000 live executions keep the table responsive", async ({ page, server, api }) => {
  await api.createFlow(`id: crowd\nnamespace: company.load\ntasks:\n  - id: nap\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT3S\n  - id: done\n    type: io.kestra.plugin.core.debug.Return\n    format: ok\n`);
  await page.goto(`${server.base}/ui/main/executions?namespace=company.load&size=100`);
  await page.locator('[data-testid="live"]').getByText("live").waitFor();
  // Every animation frame's gap, and long tasks, while the crowd runs.
  await page.evaluate(() => {
    window.__frames = [];
    window.__long = [];
    let last = performance.now();
    const tick = (t) => { window.__frames.push(t - last); last = t; window.__raf = requestAnimationFrame(tick); };
    window.__raf = requestAnimationFrame(tick);
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); })
      .observe({ type: "longtask", buffered: false });
  });
  const N = 1000;
  const t0 = Date.now();
  for (let i = 0; i < N; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, N - i) }, () => api.trigger("company.load", "crowd")));
  }
  const submitted = Date.now() - t0;
  await page.locator('[data-testid="total"]').getByText(`${N} executions`).waitFor({ timeout: 60_000 });
  for (;;) {
    const r = await api.search({ namespace: "company.load", state: "SUCCESS", size: 1 });
    if (r.total === N) break;
    await sleep(250);
  }
  await page.locator('[data-testid="executions"] tbody tr[data-state="SUCCESS"]').nth(99).waitFor({ timeout: 20_000 });
  const { frames, long } = await page.evaluate(() => {
    cancelAnimationFrame(window.__raf);
    return { frames: window.__frames.slice(1), long: window.__long };
  });
  const sorted = frames.slice().sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  const figures = {
    executions: N,
    submitted_ms: submitted,
    frames: frames.length,
    frame_ms: { p50: q(0.5), p95: q(0.95), p99: q(0.99), max: sorted[sorted.length - 1] },
    long_tasks: long.length,
    long_task_max_ms: long.length ? Math.max(...long) : 0,
  };
  writeFileSync(join(opts.out, "frame-times.json"), `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`    frame time with ${N} live executions: ${JSON.stringify(figures)}`);
  assert.ok(frames.length > 0, "frames were drawn while they ran");
  // Not a speed target: a page that froze would show a frame of seconds.
  assert.ok(figures.frame_ms.max < 2000, `the page froze for ${figures.frame_ms.max} ms`);
  await shot(page, "13-executions-1000");
});

// ---------------------------------------------------------------- runner

async function main() {
  const { browser, page, consoleErrors } = await launch({ timezoneId: ZONE });
  const server = await startServer(opts.bin).catch(async (e) => {
    await browser.close();
    throw e;
  });
  const api = apiOf(server.base);
  let failed = 0;
  try {
    for (const s of steps) {
      if (opts.only && !new RegExp(opts.only).test(s.name)) continue;
      const t = Date.now();
      const errorsBefore = consoleErrors.length;
      try {
        await Promise.race([
          s.run({ page, server, api }),
          sleep(STEP_MS).then(() => { throw new Error(`took over ${STEP_MS / 1000} s`); }),
        ]);
        const fresh = consoleErrors.slice(errorsBefore);
        assert.deepEqual(fresh, [], "no console errors");
        console.log(`ok   ${s.name} (${Date.now() - t} ms)`);
      } catch (e) {
        failed++;
        console.log(`FAIL ${s.name}\n${e.stack || e}`);
        await shot(page, `failed-${steps.indexOf(s) + 1}`).catch(() => {});
      }
    }
  } finally {
    await browser.close();
    await server.stop();
  }
  if (failed) {
    console.log(`${failed} step(s) failed; screenshots in ${opts.out}; server log:\n${server.log.join("").slice(-4000)}`);
    process.exit(1);
  }
  console.log(`all steps passed; screenshots in ${opts.out}`);
}

await main();
