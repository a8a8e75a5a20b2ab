#!/usr/bin/env python3
"""Scheduler benchmark: idle CPU with many schedules loaded, and tick lateness.

Usage: bench/scheduler/run.py [--schedules 10000] [--firing 300] [--idle-seconds 30] [--bin target/release/functiond]

Loads SCHEDULES scheduler functions (SQL task `SELECT 1`, UTC). FIRING of them are due in the
three minutes that start two minutes from now (spread evenly); the rest are due hours later.

1. Idle CPU: after the server is ready, the process's CPU time over IDLE_SECONDS (no tick due),
   as a percentage of one core. Baseline measured in the same run: the same binary with an empty
   functions directory. Target: < 1 % of a core with 10,000 schedules.
2. Lateness: how long after its tick each run was started (`functiond_schedule_lateness_seconds`
   from /metrics, whose bucket edge at 0.05 s answers the target exactly). Target: p99 < 50 ms.
"""
import argparse, os, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from datetime import datetime, timedelta, timezone

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def start(binary, root):
    fdir = os.path.join(root, "functions.d")
    port = free_port()
    env = dict(os.environ, FUNCTIOND_FUNCTIONS_DIR=fdir, FUNCTIOND_LISTEN=f"127.0.0.1:{port}",
               FUNCTIOND_LOG_LEVEL="warn", FUNCTIOND_DATABASE_URL=f"sqlite://{root}/app.db",
               FUNCTIOND_STATE_URL=f"sqlite://{root}/functiond.db", FUNCTIOND_EXPORTS_DIR=f"{root}/exports")
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    while get(base + "/readyz", 0.5)[0] != 200:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        if time.perf_counter() - t0 > 60:
            proc.kill(); sys.exit("not ready after 60 s")
        time.sleep(0.01)
    return proc, base, time.perf_counter() - t0


def idle_cpu(pid, seconds):
    time.sleep(3)  # let start-up work settle
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)


def lateness(base):
    _, text = get(base + "/metrics")
    buckets, count = {}, 0
    for line in text.splitlines():
        if line.startswith("functiond_schedule_lateness_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = int(float(line.rsplit(" ", 1)[1]))
        elif line.startswith("functiond_schedule_lateness_seconds_count"):
            count = int(float(line.rsplit(" ", 1)[1]))
    return buckets, count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=10000)
    ap.add_argument("--firing", type=int, default=300)
    ap.add_argument("--idle-seconds", type=int, default=30)
    ap.add_argument("--bin", default="target/release/functiond")
    a = ap.parse_args()

    # Baseline: no functions at all.
    root = tempfile.mkdtemp(); os.makedirs(os.path.join(root, "functions.d"))
    proc, _, _ = start(a.bin, root)
    base_cpu = idle_cpu(proc.pid, a.idle_seconds)
    proc.terminate(); proc.wait(); shutil.rmtree(root)

    root = tempfile.mkdtemp(); fdir = os.path.join(root, "functions.d"); os.makedirs(fdir)
    now = datetime.now(timezone.utc)
    first = (now + timedelta(minutes=2)).replace(second=0, microsecond=0)
    # Leave room for start-up and the idle window before the first tick.
    while (first - now).total_seconds() < a.idle_seconds + 20:
        first += timedelta(minutes=1)
    later = now + timedelta(hours=6)
    for i in range(a.schedules):
        t = first + timedelta(minutes=i % 3) if i < a.firing else later + timedelta(minutes=i % 60)
        with open(os.path.join(fdir, f"s{i:05d}.toml"), "w") as f:
            f.write(f'name = "s{i:05d}"\ntype = "scheduler"\n[schedule]\ncron = "{t.minute} {t.hour} * * *"\n'
                    f'[task]\nkind = "sql"\nsql = "SELECT 1"\n')
    proc, base, ready = start(a.bin, root)
    cpu = idle_cpu(proc.pid, a.idle_seconds)
    assert datetime.now(timezone.utc) < first, "the idle window ran into the first tick; raise the lead time"
    end = first + timedelta(minutes=2, seconds=15)
    while datetime.now(timezone.utc) < end:
        time.sleep(1)
    deadline = time.time() + 60
    buckets, count = lateness(base)
    while count < a.firing and time.time() < deadline:
        time.sleep(1); buckets, count = lateness(base)
    proc.terminate(); proc.wait(); shutil.rmtree(root)

    within = buckets.get("0.05", 0)
    print(f"{a.schedules} schedules: ready in {ready * 1000:.0f} ms")
    print(f"idle CPU: {cpu:.2f} % of a core (baseline, empty directory: {base_cpu:.2f} %; target < 1 %)")
    print(f"lateness: {count} runs of {a.firing} due; {within} started within 50 ms ({100.0 * within / max(count, 1):.1f} %), "
          f"within 10 ms: {buckets.get('0.01', 0)}, within 5 ms: {buckets.get('0.005', 0)} (target p99 < 50 ms)")
    ok = cpu < 1.0 and count >= a.firing and within >= 0.99 * count
    print("targets:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
