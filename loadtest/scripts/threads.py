#!/usr/bin/env python3
"""Where a process's CPU and wake-ups go, per thread group, over one command.

    loadtest/scripts/threads.py PID EXECUTIONS -- COMMAND [ARG...]

Reads /proc/PID/task/*/{comm,status,schedstat} before and after COMMAND runs
(the load: e.g. `peregrine-loadtest --mode http ... --executions 1000`),
then prints, per thread name with its digits folded (`shard-0`, `shard-1`
-> `shard-N`): CPU microseconds and voluntary context switches (each one a
sleep, so each wake-up is one), in total and per execution. Threads that
come and go during the run are counted from zero or to their last reading.
Linux only; no dependencies.
"""

import os
import re
import subprocess
import sys

def threads(pid):
    """{tid: (name, cpu_seconds, voluntary, involuntary)} of `pid`."""
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"{base}/{tid}/status") as f:
                status = f.read()
            with open(f"{base}/{tid}/schedstat") as f:
                schedstat = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        # The scheduler's own count of time on a CPU, in nanoseconds: exact,
        # where utime and stime are sampled at each tick.
        cpu = int(schedstat.split()[0]) / 1e9
        vol = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        invol = int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        out[tid] = (name, cpu, vol, invol)
    return out


def group(name):
    return re.sub(r"\d+", "N", name)


def main():
    args = sys.argv[1:]
    if len(args) < 4 or args[2] != "--":
        sys.exit(__doc__)
    pid, executions, command = args[0], int(args[1]), args[3:]
    if executions <= 0:
        sys.exit("EXECUTIONS must be positive")
    before = threads(pid)
    run = subprocess.run(command)
    after = threads(pid)
    totals = {}
    for tid, (name, cpu, vol, invol) in after.items():
        _, cpu0, vol0, invol0 = before.get(tid, (name, 0.0, 0, 0))
        t = totals.setdefault(group(name), [0, 0.0, 0, 0])
        t[0] += 1
        t[1] += cpu - cpu0
        t[2] += vol - vol0
        t[3] += invol - invol0
    print(f"{'threads':<18} {'n':>3} {'CPU ms':>9} {'µs/exec':>8} {'wake-ups':>9} {'per exec':>8} {'preempted':>9}")
    rows = sorted(totals.items(), key=lambda kv: -kv[1][1])
    all_cpu = sum(t[1] for _, t in rows)
    all_vol = sum(t[2] for _, t in rows)
    for name, (n, cpu, vol, invol) in rows:
        print(
            f"{name:<18} {n:>3} {cpu * 1e3:>9.0f} {cpu * 1e6 / executions:>8.0f}"
            f" {vol:>9} {vol / executions:>8.2f} {invol:>9}"
        )
    print(
        f"{'all':<18} {'':>3} {all_cpu * 1e3:>9.0f} {all_cpu * 1e6 / executions:>8.0f}"
        f" {all_vol:>9} {all_vol / executions:>8.2f}"
    )
    sys.exit(run.returncode)


if __name__ == "__main__":
    main()
