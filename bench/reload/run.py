#!/usr/bin/env python3
"""Reload benchmark: cold load of N function files to ready, and write-to-live latency.

Usage: bench/reload/run.py [--files 1000] [--edits 100] [--bin target/release/functiond]

Cold load: time from process start to the first 200 from /readyz, with N files (a mix of
webhooks, events and schedulers), against a baseline measured in the same run: the same binary on
an empty directory (process start, bind, first load). Targets: < 1 s for 1,000 files.

Write-to-live: rewrite one file (a new description), then poll /api/functions/<name> every 2 ms
until the new content hash is live; repeated EDITS times. The debounce window (100 ms by default)
is included. Target: p95 < 300 ms.
"""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

KINDS = [
    ('name = "{n}"\ntype = "webhook"\ndescription = "{d}"\n[flow]\ninline = "setWebhookResponse({{status: 200}})"\n[webhook]\nmethods = ["POST"]\n'),
    ('name = "{n}"\ntype = "event"\ndescription = "{d}"\n[event]\ntypes = ["agent_logged_in"]\nurl = "http://127.0.0.1:9/x"\n'),
    ('name = "{n}"\ntype = "scheduler"\ndescription = "{d}"\n[schedule]\ncron = "*/5 * * * *"\ntimezone = "Europe/Berlin"\n[task]\nkind = "sql"\nsql = "SELECT 1"\n'),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return None, b""


def start(binary, fdir):
    port = free_port()
    data = fdir.rstrip("/") + "-data"
    env = dict(os.environ, FUNCTIOND_FUNCTIONS_DIR=fdir, FUNCTIOND_LISTEN=f"127.0.0.1:{port}", FUNCTIOND_LOG_LEVEL="warn",
               FUNCTIOND_DATABASE_URL=f"sqlite://{data}/app.db", FUNCTIOND_STATE_URL=f"sqlite://{data}/functiond.db")
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    while True:
        status, _ = get(base + "/readyz", timeout=0.5)
        if status == 200:
            return proc, base, time.perf_counter() - t0
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        if time.perf_counter() - t0 > 30:
            proc.kill()
            sys.exit("server not ready after 30 s")
        time.sleep(0.002)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def cold(binary, nfiles, runs=3):
    times = []
    for _ in range(runs):
        d = tempfile.mkdtemp()
        for i in range(nfiles):
            write(os.path.join(d, f"f{i:05d}.toml"), KINDS[i % 3].format(n=f"f{i:05d}", d="v0"))
        proc, base, t = start(binary, d)
        _, body = get(base + "/api/functions", timeout=10)
        n = len(json.loads(body)["functions"])
        proc.terminate(); proc.wait()
        shutil.rmtree(d)
        shutil.rmtree(d + "-data", ignore_errors=True)
        assert n == nfiles, f"loaded {n} of {nfiles}"
        times.append(t)
    return min(times)


def write_to_live(binary, nfiles, edits):
    d = tempfile.mkdtemp()
    for i in range(nfiles):
        write(os.path.join(d, f"f{i:05d}.toml"), KINDS[i % 3].format(n=f"f{i:05d}", d="v0"))
    proc, base, _ = start(binary, d)
    lat = []
    try:
        for e in range(edits):
            name = f"f{(e * 7) % nfiles:05d}"
            _, body = get(f"{base}/api/functions/{name}")
            old = json.loads(body)["function"]["hash"]
            time.sleep(0.15)  # let the previous batch settle so edits do not share a window
            t0 = time.perf_counter()
            write(os.path.join(d, name + ".toml"), KINDS[int(name[1:]) % 3].format(n=name, d=f"edit {e}"))
            while True:
                _, body = get(f"{base}/api/functions/{name}")
                if json.loads(body)["function"]["hash"] != old:
                    break
                if time.perf_counter() - t0 > 10:
                    sys.exit(f"edit {e} not live after 10 s")
                time.sleep(0.002)
            lat.append((time.perf_counter() - t0) * 1000)
    finally:
        proc.terminate(); proc.wait()
        shutil.rmtree(d)
        shutil.rmtree(d + "-data", ignore_errors=True)
    lat.sort()
    return lat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--edits", type=int, default=100)
    ap.add_argument("--bin", default="target/release/functiond")
    a = ap.parse_args()
    base = cold(a.bin, 0)
    full = cold(a.bin, a.files)
    print(f"cold start, empty directory (baseline): {base * 1000:8.1f} ms")
    print(f"cold start, {a.files} files to ready:      {full * 1000:8.1f} ms  ({full / base:.1f}x baseline; target < 1000 ms)")
    lat = write_to_live(a.bin, a.files, a.edits)
    p50 = statistics.median(lat)
    p95 = lat[max(0, int(len(lat) * 0.95) - 1)]
    print(f"write-to-live over {len(lat)} edits with {a.files} files: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {lat[-1]:.1f} ms (target p95 < 300 ms; debounce 100 ms included)")
    ok = full < 1.0 and p95 < 300
    print("targets:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
