#!/usr/bin/env python3
"""The figures BENCHMARKS.md gives for Schedule triggers, on a fresh release
server per run (`sync` WAL, data in a temporary folder), loopback only:

- fire lag: FLOWS flows, flow i a Schedule `withSeconds` firing once a
  minute at second i % 60 (FLOWS / 60 fires a second, evenly spread); once
  every flow has fired once, each execution's lag is its creation
  (`state.histories[0].date`) minus its scheduled date (`trigger.variables.date`);
- idle: FLOWS flows scheduled once a year, none due: the server's CPU time
  (utime + stime, /proc/PID/stat) over IDLE_SECS, and its RSS.

Usage: schedule-figures.py PEREGRINE_BINARY [RUNS]
Environment: FLOWS (10000), IDLE_SECS (60), CLIENTS (8), PHASES ("lag idle";
`FLOWS=0 PHASES=idle` is the idle baseline of an empty server).
Prints every run and the medians.
"""

import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

FLOWS = int(os.environ.get("FLOWS", "10000"))
IDLE_SECS = int(os.environ.get("IDLE_SECS", "60"))
CLIENTS = int(os.environ.get("CLIENTS", "8"))
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(binary, data):
    port = free_port()
    log = open(os.path.join(os.path.dirname(data), "server.log"), "ab")
    proc = subprocess.Popen(
        [binary, "server", "--bind", f"127.0.0.1:{port}", "--data-dir", data],
        stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"},
    )
    for _ in range(400):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("the server did not come up")


def create_flows(port, cron_of):
    """Creates FLOWS flows from CLIENTS threads; seconds it took."""
    def work(first):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(first, FLOWS, CLIENTS):
            yaml = (
                f"id: f{i}\nnamespace: bench.schedules\ntasks:\n"
                "  - id: t\n    type: io.kestra.plugin.core.debug.Return\n    format: x\n"
                "triggers:\n  - id: s\n    type: io.kestra.plugin.core.trigger.Schedule\n"
                f"    cron: \"{cron_of(i)}\"\n    withSeconds: true\n"
            )
            c.request("POST", "/api/v1/main/flows", body=yaml,
                      headers={"content-type": "application/x-yaml"})
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                sys.exit(f"creating f{i}: {r.status} {body[:200]}")
    started = time.time()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.time() - started


def parse(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def executions(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out, page = [], 1
    while True:
        c.request("GET", f"/api/v1/main/executions/search?namespace=bench.schedules&size=1000&page={page}")
        r = json.loads(c.getresponse().read())
        out += r["results"]
        if len(out) >= r["total"] or not r["results"]:
            return out
        page += 1


def cpu_secs(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def lag_run(binary, work):
    data = os.path.join(work, "data")
    proc, port = start(binary, data)
    try:
        took = create_flows(port, lambda i: f"{i % 60} * * * * *")
        # Steady state: the minute after every flow exists, each flow fires
        # once (dates before, while flows were still being created, are
        # left out).
        since = time.time() + 1
        deadline = since + 150
        while True:
            found = [
                e for e in executions(port)
                if parse(e["trigger"]["variables"]["date"]).timestamp() >= since
            ]
            fired = {e["flowId"] for e in found}
            if len(fired) >= FLOWS or time.time() > deadline:
                break
            time.sleep(5)
        lags = [
            (parse(e["state"]["histories"][0]["date"]) - parse(e["trigger"]["variables"]["date"])).total_seconds() * 1000
            for e in found
        ]
        return {
            "create_s": took, "flows_fired": len(fired), "executions": len(found),
            "p50_ms": percentile(lags, 50), "p99_ms": percentile(lags, 99), "max_ms": max(lags),
        }
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def idle_run(binary, work):
    data = os.path.join(work, "data")
    proc, port = start(binary, data)
    try:
        create_flows(port, lambda i: f"{i % 60} {i % 60} 3 1 1 *")
        time.sleep(10)
        before = cpu_secs(proc.pid)
        time.sleep(IDLE_SECS)
        used = cpu_secs(proc.pid) - before
        return {"cpu_ms_per_min": used * 1000 * 60 / IDLE_SECS, "rss_mib": rss_mib(proc.pid)}
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    load = open("/proc/loadavg").read().split()[:3]
    print(f"machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}; "
          f"load average {' '.join(load)}; {FLOWS} flows")
    work = tempfile.mkdtemp()
    try:
        phases = os.environ.get("PHASES", "lag idle").split()
        med = lambda rs, k: statistics.median(r[k] for r in rs)
        if "lag" in phases:
            lag = [lag_run(binary, work) for _ in range(runs)]
            for i, r in enumerate(lag, 1):
                print(f"lag run {i}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()), flush=True)
            print(f"median: fire lag p50 {med(lag, 'p50_ms'):.1f} ms, p99 {med(lag, 'p99_ms'):.1f} ms, "
                  f"max {med(lag, 'max_ms'):.1f} ms; creating {FLOWS} flows {med(lag, 'create_s'):.1f} s", flush=True)
        if "idle" in phases:
            idle = [idle_run(binary, work) for _ in range(runs)]
            for i, r in enumerate(idle, 1):
                print(f"idle run {i}: cpu {r['cpu_ms_per_min']:.1f} ms/min, rss {r['rss_mib']:.0f} MiB", flush=True)
            print(f"median: idle cpu {med(idle, 'cpu_ms_per_min'):.1f} ms/min, rss {med(idle, 'rss_mib'):.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
