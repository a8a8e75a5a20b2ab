#!/usr/bin/env python3
"""CPU accounting for bench/webhook/run.sh, from /proc.

  cpu.py snap PID                          > snapshot.json
  cpu.py diff BEFORE AFTER REQUESTS

`snap` records each thread's name and CPU seconds (user + system) for process PID, and the busy
CPU seconds of the whole machine, with the time. `diff` prints one line:

  <server CPU us per request> <cores the server used> <cores busy on the machine>
  <cores in softirq (loopback networking)> <server context switches per request> <by thread...>

where "by thread" is `name=us_per_request` per thread name (trailing digits of names folded to
N, so `functiond-js-0` and `functiond-js-1` count together as `functiond-js-N`).
"""

import collections
import json
import os
import re
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")
SWITCHES = ("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")


def snap(pid):
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        name = re.sub(r"\d+$", "N", s[s.index("(") + 1 : s.rindex(")")])
        fields = s[s.rindex(")") + 2 :].split()
        switches = 0
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(SWITCHES):
                        switches += int(line.split()[1])
        except OSError:
            pass
        threads[tid] = [name, (int(fields[11]) + int(fields[12])) / TCK, switches]
    with open("/proc/stat") as f:
        c = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(c[:8]) - c[3] - c[4]) / TCK  # all but idle and iowait
    softirq = c[6] / TCK  # loopback TCP is mostly processed here, charged to no process
    return {"threads": threads, "busy": busy, "softirq": softirq, "at": time.monotonic()}


def diff(before, after, requests):
    seconds = after["at"] - before["at"]
    groups = collections.Counter()
    switches = 0
    for tid, (name, cpu, cs) in after["threads"].items():
        _, cpu0, cs0 = before["threads"].get(tid, [name, 0.0, 0])
        groups[name] += cpu - cpu0
        switches += cs - cs0
    total = sum(groups.values())
    requests = max(requests, 1)
    parts = " ".join(
        f"{k}={v * 1e6 / requests:.1f}" for k, v in groups.most_common() if v > 0.005
    )
    return (
        f"{total * 1e6 / requests:.1f} {total / seconds:.2f} "
        f"{(after['busy'] - before['busy']) / seconds:.2f} "
        f"{(after['softirq'] - before['softirq']) / seconds:.2f} "
        f"{switches / requests:.2f} {parts}"
    )


def main():
    if sys.argv[1] == "snap":
        print(json.dumps(snap(sys.argv[2])))
    elif sys.argv[1] == "diff":
        with open(sys.argv[2]) as f:
            before = json.load(f)
        with open(sys.argv[3]) as f:
            after = json.load(f)
        print(diff(before, after, int(sys.argv[4])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
