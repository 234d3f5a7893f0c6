#!/usr/bin/env python3
"""Fleet figures for `skewguard serve` (issue 10), on loopback with real peers.

    bench/fleet.py [--bin PATH] [--seconds 20]

1. Probes under a flood: 5000 idle kept-alive and 1000 slowloris connections from
   one address (re-opened as they are closed, at most 500/s), while a new
   connection probes /livez and /readyz every 200 ms; the same against nginx
   (`return 200`, 1 worker, worker_connections 1024) side by side, and `serve`
   under `prlimit --nofile=1024`. Success = 200 within 1 s; p99 of all probes.
2. Holdover: chronyd stops; how long /readyz stays 200, against the time the
   body announced (MAX_DRIFT=5000ppm, MAX_SKEW=30ms so that it ends in seconds).
3. Drift: chronyd under libfaketime's speed factor (+500 ppm and +100 ppm,
   shifted +2 s so chronyd stamps receive times from its own clock too); the
   estimate in /metrics after 30 s and 60 s of 1 s rounds against the true rate.

Prints a Markdown table. Needs chrony, libfaketime, nginx-light, util-linux (prlimit).

    bench/fleet.py --bin PATH --node-fleet 200 [--seconds 260]

4. One node, N pods (issue 19): runs bench/node_fleet.py (see there) with
   --pods N: one `serve --publish` and N readers in their own mount
   namespaces against N self-measuring sidecars, counting SNTP and HTTPS
   upstream servers; `check` over HTTPS with and without the refinement; the
   round trip against an independent SNTP client.
"""
import argparse
import glob
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def faketime_lib():
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1")
    if not found:
        sys.exit("libfaketime not found: apt-get install -y libfaketime")
    return found[0]


class Chrony:
    def __init__(self, work, faketime=None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(dir=work)
        self.faketime = faketime
        self.proc = None
        self.start()

    def start(self):
        conf = os.path.join(self.dir, "chrony.conf")
        with open(conf, "w") as f:
            f.write(f"port {self.port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 3\n"
                    f"cmdport 0\nbindcmdaddress /\npidfile {self.dir}/pid\ndriftfile {self.dir}/drift\n")
        env = dict(os.environ)
        if self.faketime:
            env.update(FAKETIME=self.faketime, LD_PRELOAD=faketime_lib())
        chronyd = shutil.which("chronyd") or "/usr/sbin/chronyd"
        self.proc = subprocess.Popen([chronyd, "-d", "-x", "-f", conf], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def uri(self):
        return f"ntp://127.0.0.1:{self.port}"


class Serve:
    def __init__(self, binary, env, wrapper=()):
        self.port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith("SKEWGUARD_")}
        full.update(env)
        full["SKEWGUARD_LISTEN"] = f"127.0.0.1:{self.port}"
        full["SKEWGUARD_LOG"] = "warn"
        self.proc = subprocess.Popen([*wrapper, binary, "serve"], env=full,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            status, _ = get(self.port, "/readyz")
            if status == 200:
                return
            time.sleep(0.1)
        raise SystemExit("serve did not become ready")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=5)


def get(port, path, bound=1.0):
    """(status or None, body) of one GET on a new connection, within `bound` seconds."""
    start = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=bound)
        s.settimeout(max(0.001, bound - (time.monotonic() - start)))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
    except OSError:
        return None, ""
    if time.monotonic() - start > bound:
        return None, ""
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ")[1]), body.decode(errors="replace")
    except (IndexError, ValueError):
        return None, ""


def metric(port, series):
    _, body = get(port, "/metrics", 2.0)
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[1])
    return None


def measurements(port, result):
    _, body = get(port, "/metrics", 2.0)
    return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
               if l.startswith("skewguard_measurements_total{") and f'result="{result}"' in l)


def flood(port, stop, idle=5000, slow=1000, reopen_per_second=500):
    socks = [None] * (idle + slow)
    opened = [0]

    def open_one(i):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=0.2)
            head = b"GET / HTTP/1.1\r\nHost: x\r\n" + (b"" if i >= idle else b"\r\n")
            s.sendall(head)
            s.setblocking(False)
            opened[0] += 1
            return s
        except OSError:
            return None

    def run():
        last_drip = time.monotonic()
        first = True
        while not stop.is_set():
            budget = 10 ** 9 if first else reopen_per_second // 10
            drip = time.monotonic() - last_drip >= 1.0
            if drip:
                last_drip = time.monotonic()
            for i, s in enumerate(socks):
                if stop.is_set():
                    break
                alive = s is not None
                if alive:
                    try:
                        alive = bool(s.recv(4096))
                    except BlockingIOError:
                        alive = True
                    except OSError:
                        alive = False
                    if alive and i >= idle and drip:
                        try:
                            s.send(b"X-Slow: 1\r\n")
                        except OSError:
                            alive = False
                    if not alive:
                        s.close()
                        socks[i] = None
                if not alive and budget > 0:
                    budget -= 1
                    socks[i] = open_one(i)
            first = False
            time.sleep(0.1)
        for s in socks:
            if s:
                s.close()

    t = threading.Thread(target=run)
    t.start()
    return t, opened


def probe_under_flood(port, paths, seconds):
    stop = threading.Event()
    t, opened = flood(port, stop)
    time.sleep(3)
    took, ok = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        tick = time.monotonic()
        for p in paths:
            start = time.monotonic()
            status, _ = get(port, p)
            took.append(time.monotonic() - start)
            ok += status == 200
        time.sleep(max(0.0, 0.2 - (time.monotonic() - tick)))
    stop.set()
    t.join()
    took.sort()
    n = len(took)
    return {"probes": n, "ok": ok, "p50": took[n // 2], "p99": took[-(-n * 99 // 100) - 1], "max": took[-1],
            "opened": opened[0]}


def nginx(work, port):
    d = tempfile.mkdtemp(dir=work)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"daemon off; worker_processes 1; pid {d}/pid; error_log {d}/error.log;\n"
                f"events {{ worker_connections 1024; }}\n"
                f"http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }} }}\n")
    p = subprocess.Popen(["nginx", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return p


def ms(x):
    return f"{x * 1000:.1f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/skewguard"))
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--before", help="also flood this (older) binary, for comparison")
    ap.add_argument("--node-fleet", type=int, metavar="N",
                    help="only section 4: one publisher and N readers against N sidecars")
    args = ap.parse_args()
    if args.node_fleet:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import node_fleet
        if os.geteuid() != 0:
            sys.exit("--node-fleet needs root (mount namespaces)")
        node_fleet.report(os.path.abspath(args.bin), args.node_fleet, args.seconds, 20, 200)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="skewguard-fleet-")
    rows = []
    try:
        chrony = Chrony(work)
        base = {"SKEWGUARD_SOURCES": chrony.uri(), "SKEWGUARD_INTERVAL": "1s", "SKEWGUARD_TIMEOUT": "1s"}

        # 1. floods
        runs = [(args.bin, "skewguard serve", ()), (args.bin, "skewguard serve, prlimit --nofile=1024", ("prlimit", "--nofile=1024", "--"))]
        if args.before:
            runs += [(args.before, "skewguard serve before issue 10", ()),
                     (args.before, "skewguard serve before issue 10, prlimit --nofile=1024", ("prlimit", "--nofile=1024", "--"))]
        for binary, label, wrapper in runs:
            s = Serve(binary, base, wrapper)
            before = (measurements(s.port, "ok"), measurements(s.port, "error"))
            r = probe_under_flood(s.port, ["/livez", "/readyz"], args.seconds)
            after = (measurements(s.port, "ok"), measurements(s.port, "error"))
            ready, _ = get(s.port, "/readyz", 2.0)
            s.stop()
            rows.append((f"flood: {label}", f"{r['ok']}/{r['probes']} probes 200 within 1 s ({100 * r['ok'] / r['probes']:.1f} %); "
                         f"p50 {ms(r['p50'])}, p99 {ms(r['p99'])}, max {ms(r['max'])}; rounds {after[0] - before[0]:.0f} ok, "
                         f"{after[1] - before[1]:.0f} failed (skewguard_measurements_total); /readyz after the flood: {ready}; {r['opened']} flood connections"))
        port = free_port()
        n = nginx(work, port)
        r = probe_under_flood(port, ["/livez", "/readyz"], args.seconds)
        n.terminate()
        n.wait()
        rows.append(("flood: nginx (1 worker, worker_connections 1024)",
                     f"{r['ok']}/{r['probes']} probes 200 within 1 s ({100 * r['ok'] / r['probes']:.1f} %); "
                     f"p50 {ms(r['p50'])}, p99 {ms(r['p99'])}, max {ms(r['max'])}; {r['opened']} flood connections"))

        # 2. holdover
        s = Serve(args.bin, {**base, "SKEWGUARD_TIMEOUT": "500ms", "SKEWGUARD_MAX_SKEW": "30ms",
                             "SKEWGUARD_WARN_SKEW": "15ms", "SKEWGUARD_MAX_DRIFT": "5000ppm"})
        chrony.stop()
        stopped = time.monotonic()
        announced = first_seen = last_200 = None
        while time.monotonic() - stopped < 20:
            status, body = get(s.port, "/readyz")
            now = time.monotonic()
            try:
                v = json.loads(body)
            except ValueError:
                v = {}
            if status == 200:
                last_200 = now
                if "holdover" in v and announced is None:
                    first_seen = now
                    announced = now + v["holdover"]["remaining_seconds"]
            elif status == 503 and announced is not None:
                break
            time.sleep(0.05)
        s.stop()
        rows.append(("holdover (5000 ppm, MAX_SKEW 30 ms, 1 s rounds)",
                     f"/readyz 200 for {last_200 - stopped:.2f} s after the source stopped "
                     f"({last_200 - first_seen:.2f} s of it announced as holdover), 503 unknown "
                     f"{now - announced:+.2f} s from the announced end"))
        rows.append(("holdover at the defaults (500 ppm, MAX_SKEW 150 s)",
                     f"from a 1 ms bound: {(150 - 0.001) / 500e-6 / 86400:.2f} days (computed: \\|θ\\| + u + 500 ppm · t = 150 s)"))

        # 3. drift
        drifting = [(500.0, Chrony(work, "+2 x1.0005")), (100.0, Chrony(work, "+2 x1.0001"))]
        serves = [(ppm, Serve(args.bin, {**base, "SKEWGUARD_SOURCES": c.uri(), "SKEWGUARD_PROFILE": "aws-s3",
                                          "SKEWGUARD_MAX_SKEW": "60s", "SKEWGUARD_WARN_SKEW": "10s"})) for ppm, c in drifting]
        start = time.monotonic()
        seen = {}
        for at in (30, 60):
            time.sleep(max(0.0, start + at - time.monotonic()))
            for ppm, s in serves:
                ratios = (metric(s.port, "skewguard_frequency_error_ratio"),
                          metric(s.port, "skewguard_frequency_error_uncertainty_ratio"))
                seen[(ppm, at)] = tuple(None if r is None else r * 1e6 for r in ratios)
        for ppm, s in serves:
            s.stop()
            est = "; ".join(f"after {at} s: {e:.1f} ± {u:.1f} ppm ({100 * (e - ppm) / ppm:+.1f} %)"
                            for at in (30, 60) for e, u in [seen[(ppm, at)]] if e is not None)
            rows.append((f"drift estimate, reference +{ppm:.0f} ppm (libfaketime)", est))
        for _, c in drifting:
            c.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| measurement | result |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
