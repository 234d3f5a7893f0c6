#!/usr/bin/env python3
"""One node, N pods (issue 19): the node file against self-measuring sidecars,
on loopback with counting upstream servers. Run as root (mount namespaces).

    python3 bench/node_fleet.py --bin BIN [--pods 200] [--seconds 260]
    python3 bench/fleet.py --bin BIN --node-fleet 200 --seconds 260   (the same)

BIN should be the release static build (`scripts/static-build.sh --locked`,
then $CARGO_TARGET_DIR/static/skewguard). Prerequisites: Linux, root,
python3 >= 3.9 (no packages beyond the standard library), the `openssl` CLI
(makes a test CA and a leaf for 127.0.0.2-7), `cc` (bench/podexec.c and
bench/sntp.c), util-linux (`unshare`, `mount`), chrony (`chronyd`, section 3). Loopback only; bounded: about --seconds plus
two minutes; everything it starts is stopped at the end.

1. Fleet, four cases side by side, each with its own counting "upstream"
   servers on its own loopback address (127.0.0.2-5; 127.0.0.1 would be the
   machine's own daemon, which skewguard exempts from the 64 s rule): an SNTP
   responder (UDP) and an HTTPS `Date` server (TLS on loopback; skewguard
   trusts the test CA through SSL_CERT_FILE), counting queries, TLS
   connections, requests and bytes on the wire.
   (a) one `serve --publish DIR/node.json` and N pods: each pod is a private
       mount namespace (`unshare --mount`, a tmpfs on /mnt and DIR bind-mounted
       read-only on /mnt/node, as a container's volume would be) in which a
       reader runs `skewguard check` every 10 s (staggered), with
       `node:///mnt/node/node.json` first and the same two servers as
       fallback; the reader enters the pod's namespace (bench/podexec.c:
       setns, then exec, started with posix_spawn) and execs the binary, as
       `docker exec`/a kubelet exec probe would, minus the runtime;
   (b) N self-measuring `serve` sidecars; for N = 1 and N.
   Every `serve` runs with INTERVAL 10s (below the 64 s rule, so the rule is
   what limits it). Reports upstream queries per hour per server (after
   `settle` seconds of start-up), the shortest gap between two queries a
   server saw, the readers' time to verdict (spawn to exit as the harness
   sees it, p50/p99) beside the same harness running `skewguard --version`
   in a pod once a second (podexec plus the start of the static binary, no
   measuring), and CPU per node per hour: the publisher plus every reader
   process (rusage, podexec included), against the sidecars (/proc/PID/stat).
2. `check` over HTTPS (127.0.0.6) on a good clock: the counting server is the
   only source; runs with the defaults (MAX_SKEW 150s: the first answer
   decides, no refinement), with HTTP_BUDGET=0 (one request, refinement off
   by setting) and with MAX_SKEW=1s and 1200ms (refinement runs: more answers
   can change the verdict). Requests, TLS connections, bytes on the wire and
   time to verdict per run.
3. Round trip: the rtt_seconds `check --json` reports for a loopback chronyd
   (ntp://127.0.0.1, SAMPLES=1) against two independent SNTP clients, one
   exchange each on a fresh connected socket like skewguard's, interleaved
   over many runs: bench/sntp.c (compiled with `cc` if there is one) in a
   fresh process each, as `check` is, and a Python one inside the harness
   (warm); bench/sntp.c also with T4 the kernel receive stamp (SO_TIMESTAMPNS,
   as chronyd and skewguard take it); the NTP delay δ = (T4 − T1) − (T3 − T2).
"""
import argparse
import heapq
import json
import multiprocessing
import os
import random
import resource
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

from fleet import free_port  # bench/fleet.py, beside this file

NTP_EPOCH = 2208988800
HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"]


def make_certs(work):
    """A test CA and a leaf for the loopback hosts, with the `openssl` CLI."""
    ca_key, ca, key, csr, leaf, ext = (os.path.join(work, n) for n in
                                       ("ca.key", "ca.pem", "leaf.key", "leaf.csr", "leaf.pem", "leaf.ext"))
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,"
                + ",".join(f"IP:{h}" for h in ["127.0.0.1", *HOSTS]) + "\n")
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
                    "-subj", "/CN=skewguard fleet bench CA",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign"], **quiet)
    subprocess.run(["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"], **quiet)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                    "-out", leaf, "-days", "2", "-extfile", ext], **quiet)
    return ca, leaf, key


# ---------------------------------------------------------------- upstream servers

class Counting:
    """An SNTP responder (UDP) and an HTTPS `Date` server (TCP + TLS, keep-alive)
    on one loopback address, counting what they answer, with monotonic times."""

    def __init__(self, host, ctx):
        self.host, self.ctx = host, ctx
        self.ntp, self.conns, self.reqs = [], [], []
        self.bytes_in = self.bytes_out = 0
        self.lock = threading.Lock()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, 0))
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, 0))
        self.tcp.listen(1024)
        self.ntp_port = self.udp.getsockname()[1]
        self.https_port = self.tcp.getsockname()[1]
        threading.Thread(target=self._ntp, daemon=True).start()
        threading.Thread(target=self._accept, daemon=True).start()

    def _ntp(self):
        while True:
            data, addr = self.udp.recvfrom(512)
            if len(data) < 48:
                continue
            now = time.time()
            with self.lock:
                self.ntp.append(time.monotonic())
            stamp = struct.pack("!II", int(now) + NTP_EPOCH, int((now % 1) * 2**32))
            # LI 0, VN 4, mode 4; stratum 2; poll 6; precision -20; root delay
            # and dispersion 1 ms; refid; reference, origin, receive, transmit.
            reply = (bytes([0x24, 2, 6, 0xEC]) + struct.pack("!II", 66, 66) + b"LOCL"
                     + stamp + data[40:48] + stamp + stamp)
            self.udp.sendto(reply, addr)

    def _accept(self):
        while True:
            conn, _ = self.tcp.accept()
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, sock):
        """TLS through memory BIOs, so the bytes on the wire can be counted."""
        import email.utils
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(inc, out, server_side=True)
        # Idle connections kept 75 s, nginx's default keepalive_timeout (longer
        # than the 64 s between two queries of one server); and as web servers
        # do for keep-alive, no Nagle wait behind the session tickets for the
        # delayed ACK (40 ms a response otherwise).
        sock.settimeout(75)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def flush():
            data = out.read()
            if data:
                sock.sendall(data)
                with self.lock:
                    self.bytes_out += len(data)

        def call(fn, *args):
            while True:
                try:
                    r = fn(*args)
                    flush()
                    return r
                except ssl.SSLWantReadError:
                    flush()
                    data = sock.recv(65536)
                    if not data:
                        raise EOFError
                    with self.lock:
                        self.bytes_in += len(data)
                    inc.write(data)

        try:
            call(tls.do_handshake)
            with self.lock:
                self.conns.append(time.monotonic())
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = call(tls.read, 65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                with self.lock:
                    self.reqs.append(time.monotonic())
                date = email.utils.formatdate(usegmt=True)
                close = b"connection: close" in head.lower()
                call(tls.write, (f"HTTP/1.1 204 No Content\r\nDate: {date}\r\n"
                                 + ("Connection: close\r\n" if close else "") + "\r\n").encode())
                if close:
                    return
        except (OSError, EOFError, ssl.SSLError):
            return
        finally:
            sock.close()

    def sources(self):
        return f"ntp://{self.host}:{self.ntp_port},https://{self.host}:{self.https_port}/"

    def window(self, since, until):
        def gaps(ts):
            ts = sorted(t for t in ts if since <= t < until)
            return min((b - a for a, b in zip(ts, ts[1:])), default=None)
        with self.lock:
            span = until - since
            return {
                "ntp_per_hour": sum(since <= t < until for t in self.ntp) * 3600 / span,
                "https_requests_per_hour": sum(since <= t < until for t in self.reqs) * 3600 / span,
                "https_connections_per_hour": sum(since <= t < until for t in self.conns) * 3600 / span,
                "ntp_min_gap": gaps(self.ntp),
                "https_min_gap": gaps(self.reqs),
            }

    def totals(self):
        with self.lock:
            return {"ntp": len(self.ntp), "connections": len(self.conns), "requests": len(self.reqs),
                    "bytes_in": self.bytes_in, "bytes_out": self.bytes_out}


def server_process(pipe, cert, key):
    """Runs the counting servers in their own process (so their threads never hold
    the harness's interpreter lock while it times readers), answering `pipe`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    servers = {h: Counting(h, ctx) for h in HOSTS}
    pipe.send({h: (s.sources(), s.ntp_port, s.https_port) for h, s in servers.items()})
    while True:
        try:
            what, host, *args = pipe.recv()
        except EOFError:
            return
        s = servers[host]
        pipe.send(s.window(*args) if what == "window" else s.totals())


# ---------------------------------------------------------------- pods and readers

class Pods:
    """N private mount namespaces, each with `node_dir` read-only on /mnt/node."""

    def __init__(self, n, node_dir):
        script = (f"mount -t tmpfs -o size=64k,mode=755 pod /mnt && mkdir /mnt/node && "
                  f"mount --bind -o ro {node_dir} /mnt/node && exec sleep 100000")
        self.procs = [subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]
        deadline = time.time() + 30
        for p in self.procs:
            while True:
                try:
                    with open(f"/proc/{p.pid}/comm") as f:
                        if f.read().strip() == "sleep":
                            break
                except OSError:
                    pass
                if p.poll() is not None or time.time() > deadline:
                    raise SystemExit("a pod's mount namespace could not be set up (root and util-linux needed)")
                time.sleep(0.01)
        with open(f"/proc/{self.procs[0].pid}/mountinfo") as f:
            mounts = [l for l in f if " /mnt/node " in l]
        if not mounts or " ro," not in mounts[0] and " ro " not in mounts[0]:
            raise SystemExit(f"/mnt/node is not a read-only bind mount in the pod: {mounts}")
        self.ns = [f"/proc/{p.pid}/ns/mnt" for p in self.procs]

    def stop(self):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def compiled(work, name, static=False):
    """bench/NAME.c compiled with `cc` into `work` (None without a C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    out = os.path.join(work, name)
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".c")
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if static and subprocess.run([cc, "-O2", "-static", "-o", out, src], **quiet).returncode == 0:
        return out
    subprocess.run([cc, "-O2", "-o", out, src], check=True)
    return out


DEVNULL = [(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
           (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]


def spawn_in(podexec, ns_file, argv, env):
    """`argv` run inside the pod whose mount namespace is `ns_file`, through
    bench/podexec.c (setns, then exec) started with posix_spawn (a vfork: the
    harness's own memory is not copied)."""
    return os.posix_spawn(podexec, [podexec, ns_file, *argv], env, file_actions=DEVNULL)


# ---------------------------------------------------------------- skewguard processes

def clean_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKEWGUARD_")}
    env.update(extra)
    return env


def spawn_serve(binary, env):
    full = clean_env({**env, "SKEWGUARD_LISTEN": f"127.0.0.1:{free_port()}", "SKEWGUARD_LOG": "warn"})
    return subprocess.Popen([binary, "serve"], env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round((len(xs) - 1) * p)))] if xs else float("nan")


def ms(x):
    return f"{x * 1000:.2f} ms"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------- 1. fleet

def fleet(binary, n, seconds, work, ask, addrs, ca):
    settle, every = 20.0, 10.0
    cases = [("node", 1, HOSTS[0]), ("node", n, HOSTS[1]), ("self", 1, HOSTS[2]), ("self", n, HOSTS[3])]
    procs, pods = {}, {}
    tls_env = {"SSL_CERT_FILE": ca}
    for label, count, host in cases:
        base = {**tls_env, "SKEWGUARD_SOURCES": addrs[host][0], "SKEWGUARD_INTERVAL": "10s",
                "SKEWGUARD_TIMEOUT": "1s"}
        if label == "node":
            d = os.path.join(work, f"node-{count}")
            os.mkdir(d)
            procs[(label, count)] = [spawn_serve(binary, {**base, "SKEWGUARD_PUBLISH": f"{d}/node.json"})]
            pods[count] = Pods(count, d)
        else:
            procs[(label, count)] = [spawn_serve(binary, base) for _ in range(count)]
    start = time.monotonic()
    time.sleep(5)  # the publishers' first measurement
    loads = [loadavg()]
    cpu0 = {}

    def sample_cpu():
        time.sleep(max(0.0, start + settle - time.monotonic()))
        cpu0.update({k: sum(cpu_seconds(p.pid) for p in ps) for k, ps in procs.items()})
        time.sleep(max(0.0, start + (settle + seconds) / 2 - time.monotonic()))
        loads.append(loadavg())

    sampler = threading.Thread(target=sample_cpu)
    sampler.start()
    end = start + seconds
    # Both reader fleets from this one thread: N = 1 and N = n pods merged.
    merged = Merged([pods[1], pods[n]])
    reader_env = {count: clean_env({**tls_env, "SKEWGUARD_LOG": "off",
                                    "SKEWGUARD_SOURCES": f"node:///mnt/node/node.json,{addrs[h][0]}"})
                  for label, count, h in cases if label == "node"}
    podexec = compiled(work, "podexec", static=True)
    if not podexec:
        raise SystemExit("the fleet needs a C compiler (cc) for bench/podexec.c")
    res = run_readers(podexec, merged, binary, reader_env, every, time.monotonic(), start + settle, end)
    sampler.join()
    loads.append(loadavg())
    cpu1 = {k: sum(cpu_seconds(p.pid) for p in ps) for k, ps in procs.items()}
    for ps in procs.values():
        for p in ps:
            p.send_signal(signal.SIGTERM)
    for ps in procs.values():
        for p in ps:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
    for p in pods.values():
        p.stop()
    window = end - (start + settle)
    rows = []
    for label, count, host in cases:
        w = ask(("window", host, start + settle, end))
        cpu = (cpu1[(label, count)] - cpu0[(label, count)]) * 3600 / window
        row = {"case": label, "n": count, **w, "serve_cpu_per_hour": cpu}
        if label == "node":
            r = res[count]
            row.update(reader_checks=len(r["check"]), reader_failed=r["failed"],
                       reader_p50=pct(r["check"], 0.5), reader_p99=pct(r["check"], 0.99),
                       reader_cpu_per_hour=r["cpu"] * 3600 / window,
                       version_n=len(r["version"]), version_p50=pct(r["version"], 0.5),
                       version_p99=pct(r["version"], 0.99),
                       check_cpu_ms=r["cpu"] / max(1, len(r["check"])) * 1000,
                       version_cpu_ms=r["version_cpu"] / max(1, len(r["version"])) * 1000)
        rows.append(row)
    return rows, window, loads


class Merged:
    """Several pod sets seen as one list of namespaces, with the set each belongs to."""

    def __init__(self, sets):
        self.ns, self.owner = [], []
        for s in sets:
            self.ns += s.ns
            self.owner += [len(s.ns)] * len(s.ns)


def run_readers(podexec, merged, binary, envs, every, start, count_from, until):
    """Each pod runs `check` every `every` seconds (each set of pods staggered
    over `every` on its own), and the first pod of each set `--version` once
    a second, from `start` until `until`; what starts from `count_from` on is
    counted. One thread: a launch is timed from before the spawn to the exit seen
    on the pid's fd (epoll); CPU from wait4's rusage."""
    firsts = {}
    due = []
    counts = {}
    for idx, owner in enumerate(merged.owner):
        k = counts.get(owner, 0)
        counts[owner] = k + 1
        firsts.setdefault(owner, idx)
        due.append((start + every * k / owner + 0.003 * idx, idx, "check"))
    for owner, idx in firsts.items():
        due.append((start + 0.5, idx, "version"))
    heapq.heapify(due)
    ep = select.epoll()
    running = {}
    out = {o: {"check": [], "version": [], "failed": 0, "cpu": 0.0, "version_cpu": 0.0}
           for o in counts}
    while due or running:
        now = time.monotonic()
        while due and due[0][0] <= now:
            at, idx, kind = heapq.heappop(due)
            if at >= until:
                continue
            owner = merged.owner[idx]
            argv = [binary, "--version"] if kind == "version" else [binary, "check"]
            t0 = time.monotonic()
            pid = spawn_in(podexec, merged.ns[idx], argv, envs[owner])
            fd = os.pidfd_open(pid)
            ep.register(fd, select.EPOLLIN)
            running[fd] = (pid, t0, idx, kind)
            heapq.heappush(due, (at + (1.0 if kind == "version" else every), idx, kind))
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else 1.0
        for fd, _ in ep.poll(timeout):
            t1 = time.monotonic()
            pid, t0, idx, kind = running.pop(fd)
            ep.unregister(fd)
            os.close(fd)
            _, status, ru = os.wait4(pid, 0)
            if t0 < count_from:
                continue
            r = out[merged.owner[idx]]
            if kind == "version":
                r["version"].append(t1 - t0)
                r["version_cpu"] += ru.ru_utime + ru.ru_stime
                continue
            r["check"].append(t1 - t0)
            r["cpu"] += ru.ru_utime + ru.ru_stime
            if os.waitstatus_to_exitcode(status) != 0:
                r["failed"] += 1
    ep.close()
    return out


# ---------------------------------------------------------------- 1b. containers

def docker(*args, check=True):
    return subprocess.run(["docker", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=check)


def cgroup_cpu(cid):
    """CPU seconds of a container's cgroup (v1 cpuacct or v2 cpu.stat), exec'd processes included."""
    for path, scale in ((f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e-9),
                        (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e-6),
                        (f"/sys/fs/cgroup/docker/{cid}/cpu.stat", 1e-6)):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith("cpu.stat"):
            text = next(l.split()[1] for l in text.splitlines() if l.startswith("usage_usec"))
        return int(text) * scale
    return None


def containers(binary, k, seconds, work, ask, addrs, ca):
    """One `serve --publish` and k Docker containers (the image the Dockerfile's
    runtime stage makes of BIN, via scripts/local-image.sh; host network, the
    node file's directory mounted read-only): each runs `serve` reading the
    node file (its own /readyz), and the harness probes each every 10 s with
    `docker exec C /skewguard check`, beside `docker exec C /skewguard --version`
    once a second."""
    settle, every = 20.0, 10.0
    host = HOSTS[5]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tag = "skewguard-node-fleet-bench:local"
    subprocess.run([os.path.join(root, "scripts/local-image.sh"), "--binary", binary, tag],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    d = os.path.join(work, "node-containers")
    os.mkdir(d)
    os.chmod(work, 0o755)
    os.chmod(ca, 0o644)
    publisher = spawn_serve(binary, {"SSL_CERT_FILE": ca, "SKEWGUARD_SOURCES": addrs[host][0],
                                     "SKEWGUARD_INTERVAL": "10s", "SKEWGUARD_TIMEOUT": "1s",
                                     "SKEWGUARD_PUBLISH": f"{d}/node.json"})
    names = [f"skewguard-node-fleet-{os.getpid()}-{i}" for i in range(k)]
    sources = f"node:///run/skewguard-node/node.json,{addrs[host][0]}"
    cids = []
    try:
        for name in names:
            cids.append(docker("run", "-d", "--rm", "--name", name, "--network", "host", "--no-healthcheck",
                               "-v", f"{d}:/run/skewguard-node:ro", "-v", f"{ca}:/etc/bench-ca.pem:ro",
                               "-e", "SSL_CERT_FILE=/etc/bench-ca.pem", "-e", f"SKEWGUARD_SOURCES={sources}",
                               "-e", "SKEWGUARD_INTERVAL=10s", "-e", "SKEWGUARD_LOG=warn",
                               "-e", f"SKEWGUARD_LISTEN=127.0.0.1:{free_port()}", tag, "serve").stdout.strip())
        start = time.monotonic()
        loads = [loadavg()]
        due = [(start + 5 + every * i / k, i, "check") for i in range(k)] + [(start + 5.5, 0, "version")]
        heapq.heapify(due)
        took = {"check": [], "version": []}
        failed = 0
        cpu0 = None
        end = start + seconds
        while due:
            at, i, kind = heapq.heappop(due)
            if at >= end:
                continue
            if cpu0 is None and at >= start + settle:
                cpu0 = ([cgroup_cpu(c) for c in cids], cpu_seconds(publisher.pid))
                loads.append(loadavg())
            time.sleep(max(0.0, at - time.monotonic()))
            argv = ["/skewguard", "--version"] if kind == "version" else ["/skewguard", "check"]
            t = time.monotonic()
            r = subprocess.run(["docker", "exec", names[i], *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if t >= start + settle:
                took[kind].append(time.monotonic() - t)
                failed += kind == "check" and r.returncode != 0
            heapq.heappush(due, (at + (1.0 if kind == "version" else every), i, kind))
        cpu1 = ([cgroup_cpu(c) for c in cids], cpu_seconds(publisher.pid))
        loads.append(loadavg())
        window = end - (start + settle)
        w = ask(("window", host, start + settle, end))
        have = [b - a for a, b in zip(cpu0[0], cpu1[0]) if a is not None and b is not None]
        return {"n": k, "window": window, "loads": loads, **w, "failed": failed,
                "checks": len(took["check"]), "p50": pct(took["check"], 0.5), "p99": pct(took["check"], 0.99),
                "version_n": len(took["version"]), "version_p50": pct(took["version"], 0.5),
                "version_p99": pct(took["version"], 0.99),
                "publisher_cpu_per_hour": (cpu1[1] - cpu0[1]) * 3600 / window,
                "containers_cpu_per_hour": sum(have) * 3600 / window if len(have) == k else None}
    finally:
        docker("rm", "-f", *names, check=False)
        docker("rmi", tag, check=False)
        publisher.send_signal(signal.SIGTERM)
        publisher.wait(timeout=5)


# ---------------------------------------------------------------- 2. check over HTTPS

def https_check(binary, runs, ask, addrs, ca):
    host = HOSTS[4]
    uri = f"https://{host}:{addrs[host][2]}/"
    cases = [("defaults (MAX_SKEW 150s): first answer decides", {}),
             ("HTTP_BUDGET=0: one request, refinement off", {"SKEWGUARD_HTTP_BUDGET": "0"}),
             ("MAX_SKEW=1s: refinement runs", {"SKEWGUARD_MAX_SKEW": "1s", "SKEWGUARD_WARN_SKEW": "500ms"}),
             ("MAX_SKEW=1200ms: refinement runs", {"SKEWGUARD_MAX_SKEW": "1200ms", "SKEWGUARD_WARN_SKEW": "500ms"})]
    rows = []
    for label, extra in cases:
        env = clean_env({"SSL_CERT_FILE": ca, "SKEWGUARD_SOURCES": uri, "SKEWGUARD_OUTPUT": "json",
                         "SKEWGUARD_LOG": "off", **extra})
        took, per, verdicts, unc = [], [], {}, []
        for _ in range(runs):
            before = ask(("totals", host))
            t = time.monotonic()
            p = subprocess.run([binary, "check"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            took.append(time.monotonic() - t)
            time.sleep(0.05)  # the server thread's last counts
            after = ask(("totals", host))
            per.append({k: after[k] - before[k] for k in after})
            try:
                report = json.loads(p.stdout)
                verdicts[report["verdict"]] = verdicts.get(report["verdict"], 0) + 1
                unc.append(report["uncertainty_seconds"])
            except (ValueError, KeyError):
                verdicts["unreadable"] = verdicts.get("unreadable", 0) + 1
        avg = {k: sum(x[k] for x in per) / runs for k in per[0]}
        rows.append({"case": label, "env": extra, "runs": runs, **avg, "verdicts": verdicts,
                     "p50": pct(took, 0.5), "p99": pct(took, 0.99), "uncertainty_p50": pct(unc, 0.5)})
    return rows


# ---------------------------------------------------------------- 3. round trip

def sntp_delay(port):
    """One SNTP exchange with 127.0.0.1:port on a fresh connected socket:
    δ = (T4 − T1) − (T3 − T2), T1 just before send, T4 just after receive."""
    def ts(b):
        s, f = struct.unpack("!II", b)
        return (s - NTP_EPOCH) * 10**9 + (f * 10**9 >> 32)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(2)
    req = bytearray(48)
    req[0] = 0x23  # VN 4, mode 3
    req[40:48] = os.urandom(8)
    t1 = time.time_ns()
    s.send(req)
    data = s.recv(1024)
    t4 = time.time_ns()
    s.close()
    if data[24:32] != bytes(req[40:48]):
        raise ValueError("origin timestamp does not match")
    return ((t4 - t1) - (ts(data[40:48]) - ts(data[32:40]))) / 1e9


def chronyd(work):
    port = free_port()
    d = tempfile.mkdtemp(dir=work)
    conf = os.path.join(d, "chrony.conf")
    with open(conf, "w") as f:
        f.write(f"port {port}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 3\n"
                f"cmdport 0\nbindcmdaddress /\npidfile {d}/pid\ndriftfile {d}/drift\n")
    p = subprocess.Popen([shutil.which("chronyd") or "/usr/sbin/chronyd", "-d", "-x", "-f", conf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return p, port


def round_trip(binaries, runs, work):
    """{client: δ list} over `runs` interleaved rounds, each client one exchange
    per round: `check` of each binary in `binaries` ({label: path}), the C
    client in a fresh process (T4 read after recv, and T4 the kernel's receive
    stamp), the warm Python client."""
    proc, port = chronyd(work)
    c_client = compiled(work, "sntp")
    env = clean_env({"SKEWGUARD_SOURCES": f"ntp://127.0.0.1:{port}", "SKEWGUARD_OUTPUT": "json",
                     "SKEWGUARD_SAMPLES": "1", "SKEWGUARD_LOG": "off"})
    out = {label: [] for label in [*binaries, "sntp_c", "sntp_c_kernel", "sntp_py"]}
    def check(label, binary):
        p = subprocess.run([binary, "check"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            out[label].append(json.loads(p.stdout)["sources"][0]["rtt_seconds"])
        except (ValueError, KeyError, IndexError, TypeError):
            pass

    def sntp_c(label, *args):
        # The independent client in a fresh process, as `check` is.
        q = subprocess.run([c_client, str(port), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            out[label].append(float(q.stdout))
        except ValueError:
            pass

    clients = [lambda l=label, b=binary: check(l, b) for label, binary in binaries.items()]
    if c_client:
        clients.append(lambda: sntp_c("sntp_c"))
        # T4 the kernel's receive stamp, as chronyd (and skewguard) take it.
        clients.append(lambda: sntp_c("sntp_c_kernel", "k"))
    clients.append(lambda: out["sntp_py"].append(sntp_delay(port)))
    try:
        for _ in range(runs):
            # A fresh order each round: the first exchange after the pause
            # meets an idle CPU (its δ was 10-30 µs longer, whoever it was).
            random.shuffle(clients)
            for client in clients:
                client()
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    return out


# ---------------------------------------------------------------- main

def report(binary, n, seconds, runs, rtt_runs, rtt_also=None, containers_k=0):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="skewguard-node-fleet-")
    os.chmod(work, 0o755)
    ca, cert, key = make_certs(work)
    ctx = multiprocessing.get_context("fork")
    mine, theirs = ctx.Pipe()
    server = ctx.Process(target=server_process, args=(theirs, cert, key), daemon=True)
    server.start()
    addrs = mine.recv()
    lock = threading.Lock()

    def ask(q):
        with lock:
            mine.send(q)
            return mine.recv()

    out = {"binary": binary, "loadavg_before": loadavg()}
    try:
        if n:
            out["fleet"], out["window"], out["fleet_loadavg"] = fleet(binary, n, seconds, work, ask, addrs, ca)
        if containers_k:
            out["containers"] = containers(binary, containers_k, min(seconds, 140), work, ask, addrs, ca)
        if runs:
            out["https_check"] = https_check(binary, runs, ask, addrs, ca)
            out["https_loadavg"] = loadavg()
        if rtt_runs:
            got = round_trip({"skewguard": binary, **(rtt_also or {})}, rtt_runs, work)
            out["round_trip"] = {"runs": rtt_runs, "loadavg": loadavg(), "clients": {
                label: {"n": len(xs), **{q: pct(xs, p) for q, p in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))}}
                for label, xs in got.items()}}
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1), file=sys.stderr)
    print_tables(out, n)


def print_tables(out, n):
    print(f"load average before: {out['loadavg_before']}")
    if "fleet" in out:
        print(f"\nfleet: {out['window']:.0f} s counted; load average (1/5/15 min) at start, middle, end: "
              + "; ".join(out["fleet_loadavg"]))
        print("\n| case | upstream per hour per server: NTP queries / HTTPS requests / TLS connections | shortest gap between queries (NTP / HTTPS) | readers' time to verdict (spawn to exit) | same harness, `--version` | CPU per node per hour |")
        print("| --- | --- | --- | --- | --- | --- |")
        for r in out["fleet"]:
            what = (f"N = {r['n']}, node file: 1 publisher + {r['n']} pod(s)" if r["case"] == "node"
                    else f"N = {r['n']}, self-measuring sidecar(s)")
            gap = " / ".join("—" if g is None else f"{g:.1f} s" for g in (r["ntp_min_gap"], r["https_min_gap"]))
            up = f"{r['ntp_per_hour']:.0f} / {r['https_requests_per_hour']:.0f} / {r['https_connections_per_hour']:.0f}"
            if r["case"] == "node":
                v = (f"p50 {ms(r['reader_p50'])}, p99 {ms(r['reader_p99'])} ({r['reader_checks']} checks, "
                     f"{r['reader_failed']} not exit 0; CPU {r['check_cpu_ms']:.2f} ms each)")
                base = (f"p50 {ms(r['version_p50'])}, p99 {ms(r['version_p99'])} ({r['version_n']}; "
                        f"CPU {r['version_cpu_ms']:.2f} ms each)")
                cpu = (f"{r['serve_cpu_per_hour'] + r['reader_cpu_per_hour']:.1f} s (publisher "
                       f"{r['serve_cpu_per_hour']:.1f} s + readers {r['reader_cpu_per_hour']:.1f} s)")
            else:
                v = base = "—"
                cpu = f"{r['serve_cpu_per_hour']:.1f} s"
            print(f"| {what} | {up} | {gap} | {v} | {base} | {cpu} |")
    if "containers" in out:
        c = out["containers"]
        cpu = "—" if c["containers_cpu_per_hour"] is None else f"{c['containers_cpu_per_hour']:.1f} s"
        print(f"\ncontainers: {c['window']:.0f} s counted; load average at start, counting start, end: "
              + "; ".join(c["loads"]))
        print("\n| case | upstream per hour (NTP / HTTPS requests / TLS connections) | `docker exec C /skewguard check` | `docker exec C /skewguard --version` | CPU per hour: publisher / containers (cgroups: serve reading the node file + exec'd probes) |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| 1 publisher + {c['n']} containers | {c['ntp_per_hour']:.0f} / {c['https_requests_per_hour']:.0f} / "
              f"{c['https_connections_per_hour']:.0f} | p50 {ms(c['p50'])}, p99 {ms(c['p99'])} ({c['checks']}, "
              f"{c['failed']} not exit 0) | p50 {ms(c['version_p50'])}, p99 {ms(c['version_p99'])} ({c['version_n']}) | "
              f"{c['publisher_cpu_per_hour']:.1f} s / {cpu} |")
    if "https_check" in out:
        print(f"\n`check` over HTTPS, good clock (load average after: {out['https_loadavg']})\n")
        print("| case | runs | HTTP requests / TLS connections per run | bytes on the wire per run (to server / from server) | time to verdict p50 / p99 | verdicts | ± p50 |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in out["https_check"]:
            print(f"| {r['case']} | {r['runs']} | {r['requests']:.1f} / {r['connections']:.1f} | "
                  f"{r['bytes_in']:.0f} / {r['bytes_out']:.0f} | {ms(r['p50'])} / {ms(r['p99'])} | "
                  f"{r['verdicts']} | {ms(r['uncertainty_p50'])} |")
    if "round_trip" in out:
        r = out["round_trip"]
        print(f"\nround trip against loopback chronyd, {r['runs']} interleaved runs (load average after: {r['loadavg']})\n")
        print("| client | p10 | p50 | p90 |\n| --- | --- | --- | --- |")
        for name, c in r["clients"].items():
            label = {"skewguard": "`check --json`: rtt_seconds (SAMPLES=1), a fresh process each",
                     "sntp_c": "independent SNTP client (bench/sntp.c), a fresh process each",
                     "sntp_c_kernel": "the same, T4 the kernel's receive stamp (bench/sntp.c PORT k)",
                     "sntp_py": "independent SNTP client (Python, in the harness), a fresh socket each",
                     }.get(name, f"`check --json` of {name} (--rtt-also)")
            if c["n"]:
                print(f"| {label} ({c['n']} answers) | "
                      + " | ".join(f"{c[q] * 1e6:.0f} µs" for q in ("p10", "p50", "p90")) + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=False)
    ap.add_argument("--pods", type=int, default=200, help="N (0: skip the fleet)")
    ap.add_argument("--seconds", type=float, default=260)
    ap.add_argument("--containers", type=int, default=0, metavar="K",
                    help="also K Docker containers (image from scripts/local-image.sh), at most 140 s")
    ap.add_argument("--https-runs", type=int, default=20, help="runs per case of section 2 (0: skip)")
    ap.add_argument("--rtt-runs", type=int, default=200, help="runs of section 3 (0: skip)")
    ap.add_argument("--rtt-also", action="append", default=[], metavar="LABEL=BIN",
                    help="section 3: also the round trip of another build, interleaved")
    ap.add_argument("--sntp", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sntp:
        print(sntp_delay(args.sntp))
        return
    if not args.bin:
        ap.error("--bin is required")
    if os.geteuid() != 0:
        sys.exit("node_fleet.py needs root (mount namespaces)")
    also = dict(a.split("=", 1) for a in args.rtt_also)
    report(os.path.abspath(args.bin), args.pods, args.seconds, args.https_runs, args.rtt_runs, also,
           args.containers)


if __name__ == "__main__":
    main()
