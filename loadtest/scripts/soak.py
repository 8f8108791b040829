#!/usr/bin/env python3
"""Soak under crashes: mixed flows (the seed, a Sleep, a ForEach, errors)
against a real `peregrine server` for a given time, with kill -9 at random
moments and a restart on the same data folder after each. At the end every
acknowledged execution must be found, in the state its flow ends in, and a
last kill -9 and restart must not run any finished one again (its end date
stays). Prints acknowledged / lost / wrong / ran again / RSS / disk and
exits non-zero if anything was lost, wrong or run again.

    python3 loadtest/scripts/soak.py --bin target/release/peregrine \\
        --duration 600 --rate 200 --kill-every 20:60

Loopback only; bounded in time and count.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = open(os.path.join(HERE, "..", "flows", "seed.yaml")).read()
ORDER = {
    "order_id": 1,
    "first_name": "Ada",
    "last_name": "Lovelace",
    "address": {"city": "London", "country": "UK"},
    "items": [{"quantity": 2, "price_per_unit": 3.5}],
}

FLOWS = {
    # flow id: (yaml, inputs, the state it must end in)
    "seed-jsonata": (SEED, {"order": ORDER}, "SUCCESS"),
    "soak-sleep": (
        """
id: soak-sleep
namespace: company.team
tasks:
  - id: before
    type: io.kestra.plugin.core.debug.Return
    format: "{{ execution.id }}"
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT2S
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.before.value }}"
""",
        {},
        "SUCCESS",
    ),
    "soak-each": (
        """
id: soak-each
namespace: company.team
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: [a, b, c, d, e]
    concurrencyLimit: 2
    tasks:
      - id: one
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}"
""",
        {},
        "SUCCESS",
    ),
    "soak-errors": (
        """
id: soak-errors
namespace: company.team
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: on purpose
errors:
  - id: handled
    type: io.kestra.plugin.core.log.Log
    message: "handled {{ execution.id }}"
""",
        {},
        "FAILED",
    ),
}


def request(base, method, path, body=None, content_type="application/json", timeout=30):
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Server:
    def __init__(self, binary, data):
        self.binary, self.data = binary, data
        self.proc = None
        self.base = None
        self.max_rss_kib = 0

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "server", "--bind", "127.0.0.1:0", "--data-dir", self.data],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "error"},
            text=True,
        )
        deadline = time.time() + 60
        for line in self.proc.stdout:
            if line.startswith("peregrine listening on "):
                self.base = line.split("on ", 1)[1].strip()
                break
            if time.time() > deadline:
                break
        if self.base is None:
            raise SystemExit("the server did not start")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        while time.time() < deadline:
            try:
                if request(self.base, "GET", "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("the server never became healthy")

    def sample_rss(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        self.max_rss_kib = max(self.max_rss_kib, int(line.split()[1]))
        except OSError:
            pass

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill9()


def disk_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default="target/release/peregrine")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--rate", type=float, default=100, help="executions per second")
    parser.add_argument("--kill-every", default="5:15", help="MIN:MAX seconds between kills")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--data", default=None, help="data folder (default: a temp one)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kill_min, kill_max = (float(x) for x in args.kill_every.split(":"))

    data = args.data or tempfile.mkdtemp(prefix="peregrine-soak-")
    server = Server(os.path.abspath(args.bin), data)
    server.start()
    for flow_id, (yaml, _, _) in FLOWS.items():
        status, body = request(
            server.base, "POST", "/api/v1/main/flows", yaml, "application/x-yaml"
        )
        if status not in (200, 409):
            raise SystemExit(f"cannot create {flow_id}: {status} {body[:200]!r}")

    acknowledged = {}  # id -> flow id
    refused = kills = errors = 0
    lock = threading.Lock()
    stop_at = time.time() + args.duration
    next_kill = time.time() + rng.uniform(kill_min, kill_max)
    interval = 1.0 / args.rate
    names = list(FLOWS)

    def submit(flow_id):
        nonlocal refused, errors
        inputs = FLOWS[flow_id][1]
        try:
            status, body = request(
                server.base, "POST", f"/api/v1/main/executions/company.team/{flow_id}", inputs,
                timeout=10,
            )
        except OSError:
            # The server died mid-request: not acknowledged.
            with lock:
                errors += 1
            return
        with lock:
            if status == 200:
                acknowledged[json.loads(body)["id"]] = flow_id
            elif status in (429, 503):
                refused += 1
            else:
                errors += 1

    threads = []
    sent = 0
    started = time.time()
    while time.time() < stop_at:
        now = time.time()
        if now >= next_kill:
            for t in threads:
                t.join()
            threads.clear()
            server.sample_rss()
            server.kill9()
            kills += 1
            server.start()
            next_kill = time.time() + rng.uniform(kill_min, kill_max)
        due = started + sent * interval
        if due > now:
            time.sleep(min(due - now, 0.05))
            continue
        t = threading.Thread(target=submit, args=(rng.choice(names),))
        t.start()
        threads.append(t)
        sent += 1
        if len(threads) > 64:
            threads = [t for t in threads if t.is_alive()]
        if sent % 100 == 0:
            server.sample_rss()
    for t in threads:
        t.join()

    def read(exec_id):
        status, body = request(server.base, "GET", f"/api/v1/main/executions/{exec_id}")
        return json.loads(body) if status == 200 else None

    # Every acknowledged execution ends, in its flow's state.
    terminal = {"SUCCESS", "FAILED", "WARNING", "KILLED", "CANCELLED"}
    deadline = time.time() + 120
    ended = {}
    lost, wrong = [], []
    pending = dict(acknowledged)
    while pending and time.time() < deadline:
        for exec_id in list(pending):
            found = read(exec_id)
            if found is not None and found["state"]["current"] in terminal:
                ended[exec_id] = found
                del pending[exec_id]
        if pending:
            time.sleep(0.5)
    for exec_id, flow_id in pending.items():
        (lost if read(exec_id) is None else wrong).append(exec_id)
    for exec_id, found in ended.items():
        if found["state"]["current"] != FLOWS[acknowledged[exec_id]][2]:
            wrong.append(exec_id)
    server.sample_rss()

    # A last crash: nothing finished runs again.
    server.kill9()
    server.start()
    ran_again = []
    for exec_id, before in ended.items():
        after = read(exec_id)
        if after is None:
            lost.append(exec_id)
        elif after["state"].get("endDate") != before["state"].get("endDate"):
            ran_again.append(exec_id)
    disk = disk_bytes(data)
    server.stop()
    if args.data is None:
        shutil.rmtree(data, ignore_errors=True)

    print(f"duration       {args.duration:.0f} s at {args.rate:.0f}/s offered, {kills} kill -9")
    print(f"acknowledged   {len(acknowledged)}")
    print(f"refused        {refused} (429/503)")
    print(f"unanswered     {errors} (the server died mid-request, or another error)")
    print(f"lost           {len(lost)}")
    print(f"wrong state    {len(wrong)}")
    print(f"ran again      {len(ran_again)}")
    print(f"max RSS        {server.max_rss_kib / 1024:.0f} MiB")
    print(f"disk           {disk / (1 << 20):.0f} MiB")
    for what, ids in (("lost", lost), ("wrong", wrong), ("ran again", ran_again)):
        for exec_id in ids[:10]:
            print(f"  {what}: {exec_id} ({acknowledged.get(exec_id)})")
    if not acknowledged:
        print("nothing was acknowledged")
        return 1
    return 1 if lost or wrong or ran_again else 0


if __name__ == "__main__":
    sys.exit(main())
