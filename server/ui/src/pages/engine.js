// The engine's own figures, plotted live from `/metrics`: what no
// orchestrator's UI shows well, its latency and throughput as it runs.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { ErrorBox } from "../components/common.js";
import { format, LineChart } from "../components/chart.js";
import { max, parse, quantile, sum } from "../prometheus.js";

const EVERY_MS = 1000;
const KEEP = 180;
/** Percentiles are of the last this many scrapes' intervals (10 s). */
const WINDOW = 10;
const EXEC = "peregrine_execution_duration_seconds";
const FSYNC = "peregrine_wal_fsync_seconds";

/**
 * One sample: rates since the scrape `dt` seconds before (`before`),
 * percentiles of what was counted since `windowStart`, an older scrape.
 */
export function sample(windowStart, before, after, dt) {
  const rate = (name) => (sum(after, name) - sum(before, name)) / dt;
  const ms = (q, name) => quantile(q, windowStart, after, name) * 1000;
  return {
    at: Date.now(),
    finished: rate("peregrine_executions_finished_total"),
    created: rate("peregrine_executions_created_total"),
    rejected: rate("peregrine_executions_rejected_total"),
    p50: ms(0.5, EXEC), p95: ms(0.95, EXEC), p99: ms(0.99, EXEC),
    running: sum(after, "peregrine_executions_running"),
    kept: sum(after, "peregrine_executions_kept"),
    inbox: sum(after, "peregrine_shard_inbox_depth"),
    inboxMax: max(after, "peregrine_shard_inbox_depth"),
    fsyncs: rate(`${FSYNC}_count`),
    fsync50: ms(0.5, FSYNC), fsync99: ms(0.99, FSYNC),
    followers: sum(after, "peregrine_sse_followers"),
  };
}

export function EnginePage() {
  const [samples, setSamples] = useState([]);
  const [error, setError] = useState(null);
  useEffect(() => {
    const scrapes = [];
    let lastAt = 0;
    let stopped = false;
    const scrape = async () => {
      try {
        const r = await fetch("/metrics");
        if (!r.ok) throw new Error(`/metrics answered ${r.status}`);
        const now = performance.now();
        const metrics = parse(await r.text());
        if (stopped) return;
        // A sample is what happened between two scrapes: none from the first.
        if (scrapes.length) {
          const s = sample(scrapes[0], scrapes[scrapes.length - 1], metrics, (now - lastAt) / 1000);
          setSamples((all) => all.concat([s]).slice(-KEEP));
        }
        scrapes.push(metrics);
        if (scrapes.length > WINDOW) scrapes.shift();
        lastAt = now;
        setError(null);
      } catch (e) {
        if (!stopped) setError(e);
      }
    };
    scrape();
    const t = setInterval(scrape, EVERY_MS);
    return () => { stopped = true; clearInterval(t); };
  }, []);
  const s = samples[samples.length - 1] || {};
  const card = (title, value, unit, chart, testid) => html`
    <div class="panel card" data-testid=${testid}><h3>${title}</h3>
      <div class="big">${format(value)}<span class="muted"> ${unit}</span></div>${chart}</div>`;
  return html`
    <div class="toolbar"><h1 class="grow">Engine</h1><span class="muted">from /metrics, every ${EVERY_MS / 1000} s</span></div>
    <${ErrorBox} error=${error} />
    <div class="cards" data-samples=${samples.length}>
      ${card("Executions per second (ended)", s.finished, "/s", html`<${LineChart} label="executions per second" samples=${samples}
        series=${[{ key: "finished", color: "#029E73" }, { key: "created", color: "#1761FD" }]} unit="" />`, "rate")}
      ${card("Latency p99 (start to end, last 10 s)", s.p99, "ms", html`<${LineChart} label="latency percentiles" samples=${samples}
        series=${[{ key: "p50", color: "#029E73" }, { key: "p95", color: "#DD5F00" }, { key: "p99", color: "#AB0009" }]} unit="" />
        <div class="muted">p50 ${format(s.p50)} · p95 ${format(s.p95)} · p99 ${format(s.p99)} ms</div>`, "latency")}
      ${card("Running executions", s.running, "", html`<${LineChart} label="running executions" samples=${samples}
        series=${[{ key: "running", color: "#8405FF" }]} />`, "running")}
      ${card("Inbox depth (all shards)", s.inbox, `max ${format(s.inboxMax)}`, html`<${LineChart} label="inbox depth" samples=${samples}
        series=${[{ key: "inbox", color: "#1761FD" }]} />`, "inbox")}
      ${card("WAL fsync p99 (last 10 s)", s.fsync99, "ms", html`<${LineChart} label="WAL fsync latency" samples=${samples}
        series=${[{ key: "fsync50", color: "#029E73" }, { key: "fsync99", color: "#AB0009" }]} />
        <div class="muted">p50 ${format(s.fsync50)} ms · ${format(s.fsyncs)} syncs/s</div>`, "fsync")}
      ${card("Kept finished executions", s.kept, "", html`<div class="muted">followers ${format(s.followers)} · rejected ${format(s.rejected)}/s</div>`, "kept")}
    </div>`;
}
