#!/usr/bin/env python3
"""Fleet-scale figures for the redis store (run by `scripts/load.sh --fleet`).

Starts one redis-server and REPLICAS revoke-proxy processes (release build)
on loopback, with ENTRIES live token revocations written beforehand the way a
backend would (SET plus the change-log XADD), and prints:

  * store CPU per live entry per replica at start (INFO commandstats usec)
    and the time until every replica is ready;
  * idle store commands per second per replica over IDLE_SECONDS;
  * store CPU per missed entry after the log readers are killed while MISSED
    entries are written (the catch-up's own commands only);
  * RSS per live entry (a replica with the entries minus one without);
  * propagation lag p50 / p99 across the other replicas for LAG_WRITES
    revocations made through the admin API of the first replica.

Everything listens on 127.0.0.1 and is stopped at exit. Bounded: every wait
has a deadline.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ENTRIES = int(os.environ.get("ENTRIES", "1000000"))
REPLICAS = int(os.environ.get("REPLICAS", "10"))
IDLE_SECONDS = int(os.environ.get("IDLE_SECONDS", "60"))
MISSED = int(os.environ.get("MISSED", "1000"))
LAG_WRITES = int(os.environ.get("LAG_WRITES", "200"))
READY_DEADLINE = float(os.environ.get("READY_DEADLINE", "300"))
BIN = os.environ.get("BIN", "target/release/revoke-proxy")
PREFIX = "revoke-proxy:"
ADMIN_TOKEN = "fleet-admin-token-0123456789abcdef"
SECRET = "fleet-secret-0123456789-0123456789-abcdef"

procs = []
work = tempfile.mkdtemp(prefix="rp-fleet-")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} never opened")


class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(1 << 20)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def call(self, *args):
        self.sock.sendall(self.encode(args))
        return self._reply()

    def pipeline(self, commands):
        self.sock.sendall(b"".join(self.encode(c) for c in commands))
        return [self._reply() for _ in commands]

    def commandstats(self):
        stats = {}
        for line in self.call("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line[len("cmdstat_"):].split(":", 1)
                fields = dict(f.split("=") for f in rest.split(","))
                stats[name] = (int(fields["calls"]), int(fields["usec"]))
        return stats


def fill(r, n, prefix="u"):
    """n token revocations, each a SET plus its log entry (backend style)."""
    until = int(time.time()) + 86000
    batch = []
    for i in range(n):
        key = f"{PREFIX}t:s{prefix}{i}:sj{i}"
        batch.append(("SET", key, until, "EXAT", until))
        now_ms = int(time.time() * 1000)
        batch.append(("XADD", PREFIX + "{log}", "*", "k", key, "v", until, "t", now_ms))
        if len(batch) >= 20000:
            r.pipeline(batch)
            batch = []
    if batch:
        r.pipeline(batch)


def start_replica(redis_port, name, prefix=PREFIX):
    listen, admin = free_port(), free_port()
    cfg = os.path.join(work, f"{name}.yaml")
    with open(cfg, "w") as f:
        f.write(
            f"listen: 127.0.0.1:{listen}\nupstream: http://127.0.0.1:9\n"
            f"jwt:\n  algorithms: [HS256]\n  secret: {SECRET}\n"
            f"admin:\n  listen: 127.0.0.1:{admin}\n  token: {ADMIN_TOKEN}\n"
            f"log:\n  level: warn\n"
            f"revocation:\n  max_staleness: 30s\n  store:\n    type: redis\n"
            f"    url: redis://127.0.0.1:{redis_port}\n    key_prefix: \"{prefix}\"\n"
        )
    log = open(os.path.join(work, f"{name}.log"), "w")
    p = subprocess.Popen([BIN, "run", "--config", cfg], stdout=log, stderr=log)
    procs.append(p)
    return {"proc": p, "admin": admin, "name": name}


def http(port, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
        req.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def wait_ready(replicas, deadline):
    end = time.time() + deadline
    pending = list(replicas)
    while pending and time.time() < end:
        pending = [r for r in pending if http(r["admin"], "/readyz")[0] != 200]
        if pending:
            time.sleep(0.1)
    if pending:
        sys.exit(f"{len(pending)} replicas not ready after {deadline}s")


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def metric_sum(text, name):
    """The sum of every labelled sample of `name`."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{"))


def buckets(text, name):
    out = []
    for line in text.splitlines():
        if line.startswith(name + "_bucket{le=\""):
            le = line.split('"')[1]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return out


def quantile(bks, q):
    total = bks[-1][1] if bks else 0
    if total == 0:
        return float("nan")
    for le, c in bks:
        if c >= q * total:
            return le
    return float("inf")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def delta(after, before, names=None):
    calls = usec = 0
    for k, (c, u) in after.items():
        if names is not None and k not in names:
            continue
        c0, u0 = before.get(k, (0, 0))
        calls += c - c0
        usec += u - u0
    return calls, usec


def main():
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed")
    port = free_port()
    procs.append(subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_port(port)
    r = Redis(port)
    t = time.time()
    fill(r, ENTRIES)
    print(f"filled {ENTRIES} entries in {time.time() - t:.1f}s")

    # A replica on an empty prefix: the RSS baseline.
    base = start_replica(port, "base", prefix="empty:")
    wait_ready([base], 30)

    # The first replica finds no snapshot: it scans the keys, then writes one.
    r.call("CONFIG", "RESETSTAT")
    t = time.time()
    seed = start_replica(port, "seed")
    wait_ready([seed], READY_DEADLINE)
    seed_ready = time.time() - t
    calls, usec = delta(r.commandstats(), {})
    print(f"first start (no snapshot, key scan): ready in {seed_ready:.1f}s; store {calls} commands, "
          f"{usec / 1e3:.0f} ms CPU = {usec / max(ENTRIES, 1):.3f} us per live entry")
    end = time.time() + READY_DEADLINE
    while time.time() < end and not (r.call("GET", PREFIX + "{log}snap") or "").startswith("v1 "):
        time.sleep(0.2)
    print(f"snapshot written {time.time() - t:.1f}s after the first start: "
          f"{r.call('GET', PREFIX + '{log}snap')}")

    r.call("CONFIG", "RESETSTAT")
    before = r.commandstats()
    t = time.time()
    reps = [start_replica(port, f"r{i}") for i in range(REPLICAS)]
    wait_ready(reps, READY_DEADLINE)
    ready = time.time() - t
    calls, usec = delta(r.commandstats(), before)
    print(f"start from the snapshot: {REPLICAS} replicas ready in {ready:.1f}s; store {calls / REPLICAS:.0f} "
          f"commands and {usec / REPLICAS / 1e3:.0f} ms CPU per replica = "
          f"{usec / REPLICAS / max(ENTRIES, 1):.3f} us per live entry (target <= 0.3)")
    rss = [rss_kb(x["proc"].pid) for x in reps]
    base_rss = rss_kb(base["proc"].pid)
    per_entry = (sum(rss) / len(rss) - base_rss) * 1024 / max(ENTRIES, 1)
    print(f"rss: baseline {base_rss / 1024:.1f} MiB, with entries {sum(rss) / len(rss) / 1024:.1f} "
          f"MiB = {per_entry:.1f} bytes per live entry (target <= 40)")

    r.call("CONFIG", "RESETSTAT")
    time.sleep(IDLE_SECONDS)
    idle = r.commandstats()
    calls, usec = delta(idle, {})
    # The base and seed replicas idle too: count them.
    print(f"idle: {calls / IDLE_SECONDS / (REPLICAS + 2):.2f} commands/s per replica over "
          f"{IDLE_SECONDS}s (target <= 2); by command: "
          + ", ".join(f"{k} {c}" for k, (c, _) in sorted(idle.items())))

    # A cut: kill every log reader, write MISSED entries, wait for catch-up.
    r.call("CONFIG", "RESETSTAT")
    readers = [line.split(" ")[0].split("=")[1]
               for line in r.call("CLIENT", "LIST").splitlines()
               if " name=revoke-proxy-log " in line]
    read_before = [metric(http(x["admin"], "/metrics")[1], "revoke_proxy_store_log_entries_total")
                   for x in reps]
    for cid in readers:
        r.call("CLIENT", "KILL", "ID", cid)
    fill(r, MISSED, prefix="missed")
    end = time.time() + 60
    while time.time() < end:
        done = [metric(http(x["admin"], "/metrics")[1], "revoke_proxy_store_log_entries_total") - b
                for x, b in zip(reps, read_before)]
        if all(d >= MISSED for d in done):
            break
        time.sleep(0.1)
    after = r.commandstats()
    written = {"set", "xadd"}
    calls, usec = delta(after, {}, names={k for k in after if k not in written})
    loads = sum(metric_sum(http(x["admin"], "/metrics")[1], "revoke_proxy_store_full_loads_total")
                for x in reps)
    print(f"cut: {len(readers)} readers killed, {MISSED} entries missed; catch-up cost "
          f"{calls / REPLICAS:.1f} commands and {usec / REPLICAS:.0f} us per replica = "
          f"{usec / REPLICAS / MISSED:.2f} us per missed entry (target <= 10 + a constant); "
          f"full loads since start {loads:.0f} (one per replica: its start)")

    # Propagation: revocations through replica 0, lag seen by the others
    # (bucket counts after minus before, so the catch-up above is left out).
    lag = "revoke_proxy_propagation_lag_seconds"
    start_bks = [buckets(http(x["admin"], "/metrics")[1], lag) for x in reps[1:]]
    for i in range(LAG_WRITES):
        status, _ = http(reps[0]["admin"], "/v1/revoke", {"sub": f"lag{i}", "jti": f"j{i}"})
        if status != 200:
            sys.exit(f"admin revoke answered {status}")
        time.sleep(0.01)
    time.sleep(1)
    merged = None
    for x, b0 in zip(reps[1:], start_bks):
        bks = [(le, c - c0) for (le, c), (_, c0) in zip(buckets(http(x["admin"], "/metrics")[1], lag), b0)]
        merged = bks if merged is None else [(le, c + m) for (le, c), (_, m) in zip(bks, merged)]
    print(f"propagation over {len(reps) - 1} replicas (bucket upper bounds): "
          f"p50 <= {quantile(merged or [], 0.5) * 1e3:g} ms, p99 <= {quantile(merged or [], 0.99) * 1e3:g} ms "
          f"(target p99 <= 5 ms)")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)
