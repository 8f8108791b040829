#!/usr/bin/env python3
"""What SSE followers cost the seed's latency: the seed table at RATE with
and without FOLLOWERS clients following running executions, alternating.

    loadtest/scripts/followers.py BIN_DIR [ROUNDS]

BIN_DIR holds `peregrine` and `peregrine-loadtest` (a release build). Per
round and per arm, a fresh server on a free loopback port; the "followed"
arm first starts FOLLOWERS executions of a flow that steps through STEPS
Sleeps of STEP_SECS each (each step is a change every follower of that
execution receives), opens one SSE follow (`GET
/api/v1/main/executions/{id}/follow`) per execution and waits until each
has its first event; then both arms run `peregrine-loadtest --mode http
--rates RATE --executions EXECUTIONS` and report its p50 and p99, the
server's CPU (schedstat of every thread) and, when followed, the events
the followers received during the load. Environment: FOLLOWERS (1000),
RATE (200), EXECUTIONS (4000), STEPS (60), STEP_SECS (1). Not part of CI;
loopback only; every client is bounded in count and time.
"""

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from procstat import cpu_secs, free_port

FOLLOWERS = int(os.environ.get("FOLLOWERS", "1000"))
RATE = int(os.environ.get("RATE", "200"))
EXECUTIONS = int(os.environ.get("EXECUTIONS", "4000"))
STEPS = int(os.environ.get("STEPS", "60"))
STEP_SECS = int(os.environ.get("STEP_SECS", "1"))
HERE = os.path.dirname(os.path.abspath(__file__))
SEED = os.path.join(HERE, "..", "flows", "seed.yaml")




def request(url, method="GET", body=None, content_type="application/json"):
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("content-type", content_type)
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def steps_flow():
    tasks = "\n".join(
        f"  - id: step{i}\n    type: io.kestra.plugin.core.flow.Sleep\n    duration: PT{STEP_SECS}S"
        for i in range(STEPS)
    )
    return f"id: steps\nnamespace: company.team\ntasks:\n{tasks}\n".encode()


class Followers:
    """FOLLOWERS SSE connections, each counting the events it reads."""

    def __init__(self, port, ids):
        self.port, self.ids = port, ids
        self.events = 0
        self.first = 0
        self.failed = 0

    async def follow(self, id, ready):
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), 10
            )
        except (OSError, asyncio.TimeoutError):
            self.failed += 1
            ready.release()
            return
        writer.write(
            f"GET /api/v1/main/executions/{id}/follow HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        seen_first = False
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if line.startswith(b"data:"):
                    self.events += 1
                    if not seen_first:
                        seen_first = True
                        self.first += 1
                        ready.release()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if not seen_first:
                self.failed += 1
                ready.release()
            writer.close()

    async def run(self, until_ready, stop):
        ready = asyncio.Semaphore(0)
        tasks = [asyncio.create_task(self.follow(id, ready)) for id in self.ids]
        for _ in self.ids:
            await asyncio.wait_for(ready.acquire(), 60)
        until_ready.set_result(None)
        await stop
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run_arm(bins, followed, work):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(dir=work)
    log = open(os.path.join(work, "server.log"), "a")
    server = subprocess.Popen(
        [os.path.join(bins, "peregrine"), "server", "--bind", f"127.0.0.1:{port}", "--data-dir", data],
        stdout=log,
        stderr=log,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    try:
        deadline = time.time() + 20
        while True:
            try:
                request(f"{url}/health")
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("the server did not come up")
                time.sleep(0.05)
        loop = asyncio.new_event_loop()
        stop = loop.create_future()
        followers = None
        runner = None
        if followed:
            request(f"{url}/api/v1/main/flows", "POST", steps_flow(), "application/x-yaml")
            ids = [
                json.loads(request(f"{url}/api/v1/main/executions/company.team/steps", "POST", b"{}"))["id"]
                for _ in range(FOLLOWERS)
            ]
            followers = Followers(port, ids)
            ready = loop.create_future()
            runner = loop.create_task(followers.run(ready, stop))
            loop.run_until_complete(ready)
        events_before = followers.events if followers else 0
        cpu_before = cpu_secs(server.pid)
        report = os.path.join(work, "report.json")
        load = subprocess.Popen(
            [
                os.path.join(bins, "peregrine-loadtest"), "--mode", "http", "--url", url,
                "--flow", SEED, "--rates", str(RATE), "--executions", str(EXECUTIONS),
                "--json", report,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # The followers read on this thread's loop while the load runs.
        async def wait_load():
            while load.poll() is None:
                await asyncio.sleep(0.05)
        loop.run_until_complete(wait_load())
        cpu = cpu_secs(server.pid) - cpu_before
        events = (followers.events - events_before) if followers else 0
        if followers:
            stop.set_result(None)
            loop.run_until_complete(runner)
        loop.close()
        with open(report) as f:
            r = json.load(f)["runs"][0]
        return {
            "p50": r["p50_ms"],
            "p99": r["p99_ms"],
            "completed": r.get("completed"),
            "cpu_us": cpu * 1e6 / EXECUTIONS,
            "events": events,
            "failed_followers": followers.failed if followers else 0,
        }
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    bins = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    arms = {"alone": [], "followed": []}
    with tempfile.TemporaryDirectory() as work:
        print(f"| round | arm | p50 ms | p99 ms | server CPU µs/exec | follower events during the load |")
        print("|---|---|---|---|---|---|")
        for n in range(1, rounds + 1):
            for arm in ("alone", "followed"):
                r = run_arm(bins, arm == "followed", work)
                arms[arm].append(r)
                print(
                    f"| {n} | {arm} | {r['p50']:.2f} | {r['p99']:.2f} | {r['cpu_us']:.0f} |"
                    f" {r['events'] if arm == 'followed' else '-'}"
                    f"{' (' + str(r['failed_followers']) + ' followers failed)' if r['failed_followers'] else ''} |",
                    flush=True,
                )
    med = {arm: statistics.median(x["p99"] for x in runs) for arm, runs in arms.items()}
    print(
        f"\nmedian p99: alone {med['alone']:.2f} ms, with {FOLLOWERS} followers {med['followed']:.2f} ms"
        f" ({med['followed'] - med['alone']:+.2f} ms)"
    )


if __name__ == "__main__":
    main()
