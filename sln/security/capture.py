"""Reproducible, labelled lab capture of IoT traffic with attacks, made inside a private network namespace.

    python -m sln.security.capture --size small --seed 0 --out tests/fixtures/ids   (root)

Safety (see docs/SECURITY_IDS.md): the driver re-executes itself under
``unshare --net --pid --fork --kill-child --mount-proc``; inside, it refuses to run unless its network
namespace differs from the caller's, its only interface is ``lo`` and there is no route at all, so
no packet can leave. Every address is checked to be in 127.0.0.0/8 before any tool gets it. Every
tool runs under ``timeout`` with count and rate limits, the whole run under a global deadline
(``timeout`` outside + SIGALRM inside), and the PID namespace kills anything left at exit.

Labels are by construction: each attack type has its own attacker address and its own time window;
a packet is ``attack`` iff an attacker address is its source or destination.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import hashlib
import io
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOOLS = ("tcpdump", "nmap", "hping3", "mosquitto", "hydra", "slowhttptest", "ip", "unshare", "timeout")
BROKER, WEB, DNS = "127.10.0.1", "127.10.0.2", "127.10.0.4"
ATTACKERS = {"scan_syn": "127.66.0.1", "scan_udp": "127.66.0.2", "flood_syn": "127.66.0.3",
             "flood_udp": "127.66.0.4", "bruteforce_http": "127.66.0.5", "slow_http": "127.66.0.6"}
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_ENV_PARENT_NS = "SLN_CAPTURE_PARENT_NETNS"

# per size: seconds, sensors, http pollers, dns clients, and the attack budgets (counts, never open-ended)
SIZES: dict[str, dict] = {
    "tiny": dict(duration=10, warmup=2, sensors=20, pollers=2, dns=2, scan_ports=60, udp_ports=20,
                 flood_n=150, flood_gap_us=2000, passwords=12, slow_conns=10, slow_s=3, deadline=90),
    "small": dict(duration=100, warmup=30, sensors=40, pollers=4, dns=6, scan_ports=1000, udp_ports=150,
                  flood_n=2000, flood_gap_us=1000, passwords=300, slow_conns=120, slow_s=12, deadline=400),
    "full": dict(duration=600, warmup=180, sensors=50, pollers=8, dns=12, scan_ports=65535, udp_ports=2000,
                 flood_n=250000, flood_gap_us=150, passwords=4000, slow_conns=800, slow_s=60, deadline=1800),
}


def check_loopback(addr: str) -> str:
    """Every address handed to a tool passes here: anything outside 127.0.0.0/8 is a bug, so stop."""
    if ipaddress.ip_address(addr) not in LOOPBACK:
        raise SystemExit(f"refusing non-loopback address {addr!r}")
    return addr


def netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def assert_private_namespace() -> None:
    """Refuse to generate traffic unless this is a fresh namespace with nothing but lo and no routes."""
    parent = os.environ.get(_ENV_PARENT_NS)
    if not parent or int(parent) == netns_inode():
        raise SystemExit("refusing: not inside a fresh network namespace created by this script")
    with open("/proc/self/net/dev") as f:
        ifaces = [ln.split(":")[0].strip() for ln in f.readlines()[2:]]
    if ifaces != ["lo"]:
        raise SystemExit(f"refusing: interfaces {ifaces} besides lo exist in this namespace")
    with open("/proc/self/net/route") as f:
        routes = f.readlines()[1:]
    if routes:
        raise SystemExit(f"refusing: main routing table is not empty: {routes}")


def _sh(cmd: list[str], timeout_s: float, **kw: object) -> subprocess.CompletedProcess:
    """Run one bounded command: `timeout` kills it, and subprocess's timeout backs that up."""
    full = ["timeout", "-k", "2", f"{timeout_s:g}", *cmd]
    return subprocess.run(full, timeout=timeout_s + 5, capture_output=True, text=True, **kw)


def tool_versions() -> dict[str, str]:
    """Debian package versions of the tools (dpkg-query: one fast call; '?' where not a Debian install)."""
    pkgs = ["tcpdump", "nmap", "hping3", "mosquitto", "hydra", "slowhttptest", "iproute2", "util-linux"]
    out = dict.fromkeys(pkgs, "?")
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *pkgs],
                           capture_output=True, text=True, timeout=20)
        out.update(ln.split(" ", 1) for ln in r.stdout.splitlines() if " " in ln)
    except (OSError, subprocess.TimeoutExpired):
        pass
    return out


# ----------------------------------------------------------------------------------------------- servers

class _Web(BaseHTTPRequestHandler):
    """IoT gateway web UI: /status is polled by benign clients, /admin (basic auth) is brute-forced."""
    protocol_version = "HTTP/1.1"
    timeout = 30  # slow-HTTP connections are dropped after this, bounding threads

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path.startswith("/admin"):
            ok = self.headers.get("Authorization") == "Basic YWRtaW46bm90LWluLXRoZS1saXN0"
            body, code = (b"ok", 200) if ok else (b"denied", 401)
        else:
            body, code = b'{"sensors": "up"}', 200
        self.send_response(code)
        if code == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="gw"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up (hydra, slowhttptest) are the point, not an error


def _dns_responder(stop: threading.Event) -> None:
    """Answers well-formed DNS A queries on DNS:53 with a 127.x address; ignores everything else."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((check_loopback(DNS), 53))
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            q, peer = s.recvfrom(2048)
        except TimeoutError:
            continue
        if len(q) < 17 or q[2] & 0x80:
            continue
        answer = q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x01\x00\x00\x00\x00" + q[12:]
        answer += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton("127.20.0.1")
        try:  # flood packets may come from port 0 or be otherwise unanswerable: drop, never die
            s.sendto(answer, peer)
        except OSError:
            pass
    s.close()


# ----------------------------------------------------------------------------------------------- benign

def _mqtt_str(s: str) -> bytes:
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def _mqtt_packet(kind: int, body: bytes) -> bytes:
    n, rem = len(body), b""
    while True:  # MQTT variable-length "remaining length"
        byte, n = n % 128, n // 128
        rem += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([kind]) + rem + body


async def _drain_reader(reader: asyncio.StreamReader) -> None:
    while await reader.read(4096):
        pass


async def _sensor(i: int, addr: str, rng: random.Random, end: float, subscriber: bool = False) -> None:
    """One MQTT client: CONNECT, then PUBLISH telemetry (periodic or Poisson) until ``end``."""
    reader, writer = await asyncio.open_connection(check_loopback(BROKER), 1883, local_addr=(addr, 0))
    connect = _mqtt_str("MQTT") + b"\x04\x02\x00\x3c" + _mqtt_str(f"sensor-{i}")
    writer.write(_mqtt_packet(0x10, connect))
    drain = asyncio.ensure_future(_drain_reader(reader))
    if subscriber:  # a dashboard: subscribes to everything, the broker fans publishes out to it
        writer.write(_mqtt_packet(0x82, b"\x00\x01" + _mqtt_str("sensors/#") + b"\x00"))
    periodic = i % 2 == 0
    period, rate, qos = rng.uniform(1.0, 5.0), rng.uniform(0.2, 1.5), 1 if i % 3 == 0 else 0
    mid, temp = 1, rng.uniform(15, 30)
    loop = asyncio.get_running_loop()
    while not subscriber:
        gap = period * rng.uniform(0.98, 1.02) if periodic else rng.expovariate(rate)
        if loop.time() + gap >= end:
            break
        await asyncio.sleep(gap)
        temp += rng.gauss(0, 0.1)
        payload = json.dumps({"id": i, "temp": round(temp, 2), "bat": rng.randint(60, 100)}).encode()
        body = _mqtt_str(f"sensors/{i}/telemetry") + (mid.to_bytes(2, "big") if qos else b"") + payload
        writer.write(_mqtt_packet(0x30 | (qos << 1), body))
        mid = mid % 65535 + 1
        await writer.drain()
    if subscriber:
        await asyncio.sleep(max(end - loop.time(), 0))
    writer.write(b"\xe0\x00")  # DISCONNECT
    await writer.drain()
    writer.close()
    drain.cancel()


async def _poller(addr: str, rng: random.Random, end: float) -> None:
    """HTTP polling of the gateway's /status, one connection per poll."""
    loop = asyncio.get_running_loop()
    while True:
        gap = rng.uniform(1.5, 2.5)
        if loop.time() + gap >= end:
            return
        await asyncio.sleep(gap)
        reader, writer = await asyncio.open_connection(check_loopback(WEB), 80, local_addr=(addr, 0))
        writer.write(f"GET /status HTTP/1.1\r\nHost: {WEB}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)
        writer.close()


async def _dns_client(addr: str, rng: random.Random, end: float) -> None:
    """DNS-like A queries (Poisson) for sensor names, from a fresh source port each time."""
    loop = asyncio.get_running_loop()
    while True:
        gap = rng.expovariate(0.7)
        if loop.time() + gap >= end:
            return
        await asyncio.sleep(gap)
        name = f"sensor-{rng.randint(1, 50)}.iot.lan"
        q = rng.randint(0, 65535).to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00\x00\x01\x00\x01"
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 0))
        s.setblocking(False)
        s.sendto(q, (check_loopback(DNS), 53))
        try:
            await asyncio.wait_for(loop.sock_recv(s, 2048), 1.0)
        except asyncio.TimeoutError:
            pass
        s.close()


async def _benign(cfg: dict, seed: int, seconds: float, hosts: dict[str, list[str]]) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    tasks = [_sensor(i, a, random.Random(seed * 1000 + i), end) for i, a in enumerate(hosts["sensors"])]
    tasks.append(_sensor(999, hosts["dashboard"][0], random.Random(seed), end, subscriber=True))
    tasks += [_poller(a, random.Random(seed * 2000 + i), end) for i, a in enumerate(hosts["pollers"])]
    tasks += [_dns_client(a, random.Random(seed * 3000 + i), end) for i, a in enumerate(hosts["dns"])]
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), seconds + 20)


# ----------------------------------------------------------------------------------------------- attacks

def _attack_commands(cfg: dict, rng: random.Random, work: Path) -> dict[str, tuple[list[str], float]]:
    """Per attack type: (command, time limit). Sources: -S / -a where the tool has it, else prefsrc."""
    a = {k: check_loopback(v) for k, v in ATTACKERS.items()}
    web, dns, broker = check_loopback(WEB), check_loopback(DNS), check_loopback(BROKER)
    scan_targets = [broker, web, dns]
    words = [f"pw{rng.randint(0, 10**6):06d}" for _ in range(cfg["passwords"])]
    (work / "passwords.txt").write_text("\n".join(words) + "\n")
    gap = cfg["flood_gap_us"]
    n = cfg["flood_n"]
    return {
        "scan_syn": (["nmap", "-sS", "-Pn", "-n", "-e", "lo", "-S", a["scan_syn"], "--max-rate", "3000",
                      "--max-retries", "1", "-p", f"1-{cfg['scan_ports']}", *scan_targets], 600),
        "scan_udp": (["nmap", "-sU", "-Pn", "-n", "-e", "lo", "-S", a["scan_udp"], "--max-rate", "500",
                      "--max-retries", "0", "-p", f"1-{cfg['udp_ports']}", *scan_targets], 600),
        "flood_syn": (["hping3", "-q", "-S", "-p", "80", "-a", a["flood_syn"], "-c", str(n), "-i", f"u{gap}", web],
                      n * gap / 1e6 * 3 + 10),
        "flood_udp": (["hping3", "-q", "--udp", "-p", "53", "-a", a["flood_udp"], "-d", "64", "-c", str(n),
                       "-i", f"u{gap}", dns], n * gap / 1e6 * 3 + 10),
        "bruteforce_http": (["hydra", "-I", "-q", "-t", "4", "-l", "admin", "-P", str(work / "passwords.txt"),
                             "-s", "80", web, "http-get", "/admin"], 300),
        "slow_http": (["slowhttptest", "-H", "-c", str(cfg["slow_conns"]), "-r", "40", "-i", "2",
                       "-l", str(cfg["slow_s"]), "-x", "24", "-p", "3", "-u", f"http://{web}/status"],
                      cfg["slow_s"] + 30),
    }


def _set_prefsrc(target: str, src: str) -> None:
    """Source address for unbound sockets to ``target`` (hydra and slowhttptest cannot pick one)."""
    subprocess.run(["ip", "route", "replace", "local", check_loopback(target), "dev", "lo", "table", "local",
                    "proto", "kernel", "scope", "host", "src", check_loopback(src)], check=True, timeout=10)


def _run_attacks(cfg: dict, rng: random.Random, work: Path, t0: float, windows: dict, log: dict) -> None:
    time.sleep(cfg["warmup"])
    cmds = _attack_commands(cfg, rng, work)
    order = list(cmds)
    rng.shuffle(order)
    budget = cfg["duration"] - cfg["warmup"] - 2
    pause = max(budget / len(order) * 0.15, 0.5)  # benign-only gap between windows
    for kind in order:
        cmd, limit = cmds[kind]
        if kind in ("bruteforce_http", "slow_http"):
            _set_prefsrc(WEB, ATTACKERS[kind])
        start = time.time()
        r = _sh(cmd, limit, cwd=work)
        windows[kind] = [start - t0, time.time() - t0]
        tail = re.sub(r"\x1b\[[0-9;]*m", "", r.stdout + r.stderr)[-300:]
        log[kind] = {"cmd": " ".join(cmd), "rc": r.returncode, "tail": tail}
        if kind in ("bruteforce_http", "slow_http"):
            _set_prefsrc(WEB, WEB)
        time.sleep(pause)


# ----------------------------------------------------------------------------------------------- labels

def _label(pcap: Path, out_csv: Path, windows: dict) -> dict:
    """labels.csv.gz: one row per pcap record; counts, flows, and the proof that every address is 127.x."""
    from .packets import ReaderStats, iter_records, parse_frame
    by_addr = {int(ipaddress.ip_address(v)): k for k, v in ATTACKERS.items()}
    stats, counts, flows = ReaderStats(), Counter(), set()
    non_loop = outside = 0
    t_first = None
    # gzip with mtime=0: the compressed bytes depend only on the rows, so the SHA-256 is reproducible
    with open(pcap, "rb") as f, gzip.GzipFile(out_csv, "wb", mtime=0) as gz, \
            io.TextIOWrapper(gz, encoding="utf-8", newline="") as g:
        w = csv.writer(g)
        w.writerow(["index", "ts", "label", "attack_type"])
        for i, (link, ts, _o, frame) in enumerate(iter_records(f, stats)):
            t_first = ts if t_first is None else t_first
            p = parse_frame(link, frame, i, ts, stats)
            kind = "benign"
            if p is None:
                kind = "other"
            else:
                stats.events += 1
                if (p.src >> 24) != 127 or (p.dst >> 24) != 127:
                    non_loop += 1
                kind = by_addr.get(p.src) or by_addr.get(p.dst) or "benign"
                a, b = (p.src, p.sport), (p.dst, p.dport)
                flows.add((p.proto, a, b) if a <= b else (p.proto, b, a))
                if kind != "benign" and kind in windows:
                    lo, hi = windows[kind]
                    outside += not (lo - 1.0 <= ts - windows["_t0"] <= hi + 5.0)
            counts[kind] += 1
            w.writerow([i, f"{ts:.6f}", "benign" if kind in ("benign", "other") else "attack", kind])
    return {"records": stats.records, "unparsed": stats.skipped() - stats.truncated_record,
            "truncated_record": stats.truncated_record, "per_type": dict(sorted(counts.items())),
            "attack_packets": sum(v for k, v in counts.items() if k not in ("benign", "other")),
            "flows_5tuple": len(flows), "non_loopback_packets": non_loop, "attack_outside_window": outside}


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------- driver

def _progress(t0: float, what: str) -> None:
    print(f"[capture +{time.time() - t0:6.1f}s] {what}", file=sys.stderr, flush=True)


def inside(size: str, seed: int, out: Path) -> None:
    """The part that runs in the namespace: safety checks, addresses, servers, traffic, labels."""
    assert_private_namespace()
    cfg = SIZES[size]
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(SystemExit("global deadline reached")))
    signal.alarm(cfg["deadline"])
    hosts = {"servers": [BROKER, WEB, DNS], "attackers": list(ATTACKERS.values()),
             "sensors": [f"127.20.{i // 250}.{i % 250 + 1}" for i in range(cfg["sensors"])],
             "dashboard": ["127.30.1.1"], "pollers": [f"127.30.0.{i + 1}" for i in range(cfg["pollers"])],
             "dns": [f"127.40.0.{i + 1}" for i in range(cfg["dns"])]}
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    for group in hosts.values():
        for a in group:
            subprocess.run(["ip", "addr", "add", f"{check_loopback(a)}/32", "dev", "lo"], check=True, timeout=10)
    assert_private_namespace()  # still only lo, still no routes after configuring it
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="slncap-"))
    pcap, labels = out / "capture.pcap", out / "labels.csv.gz"
    procs: list[subprocess.Popen] = []
    stop = threading.Event()
    try:
        td_err = open(work / "tcpdump.err", "w")
        procs.append(subprocess.Popen(["timeout", "-k", "2", str(cfg["deadline"]), "tcpdump", "-i", "lo", "-n",
                                       "-s", "128", "-U", "-Z", "root", "-w", str(pcap), "ip"], stderr=td_err))
        for _ in range(100):
            if "listening" in (work / "tcpdump.err").read_text():
                break
            time.sleep(0.1)
        (work / "mosquitto.conf").write_text(f"listener 1883 {check_loopback(BROKER)}\nallow_anonymous true\n"
                                             "persistence false\nlog_dest none\nmax_connections 500\n")
        procs.append(subprocess.Popen(["timeout", "-k", "2", str(cfg["deadline"]), "mosquitto", "-c",
                                       str(work / "mosquitto.conf")], stderr=subprocess.DEVNULL))
        web = _Server((check_loopback(WEB), 80), _Web)
        threading.Thread(target=web.serve_forever, daemon=True).start()
        threading.Thread(target=_dns_responder, args=(stop,), daemon=True).start()
        time.sleep(1.0)
        t0 = time.time()
        windows: dict = {}
        log: dict = {}
        att = threading.Thread(target=_run_attacks, args=(cfg, random.Random(seed + 1), work, t0, windows, log),
                               daemon=True)
        att.start()
        asyncio.run(_benign(cfg, seed, cfg["duration"], hosts))
        _progress(t0, "benign traffic done")
        att.join(timeout=max(cfg["deadline"] - (time.time() - t0) - 30, 1))
        _progress(t0, "attacks done")
        time.sleep(1.0)
        web.shutdown()
        stop.set()
    finally:
        for p in reversed(procs):  # SIGTERM first: tcpdump flushes its last packets on it
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
    windows["_t0"] = t0
    dropped = re.search(r"(\d+) packets? dropped by kernel", (work / "tcpdump.err").read_text())
    _progress(t0, "capture stopped")
    summary = _label(pcap, labels, windows)
    _progress(t0, "labelled")
    t0w = windows.pop("_t0")
    manifest = {
        "size": size, "seed": seed, "duration_s": cfg["duration"], "config": cfg, "t0_unix": round(t0w, 6),
        "command": f"python -m sln.security.capture --size {size} --seed {seed} --out {out}",
        "hosts": hosts, "attackers": ATTACKERS, "windows_s": {k: [round(v[0], 3), round(v[1], 3)]
                                                              for k, v in windows.items()},
        "tools": tool_versions(), "kernel": os.uname().release, "attack_runs": log,
        "packets": summary.pop("records"), **summary,
        "tcpdump_dropped_by_kernel": int(dropped.group(1)) if dropped else None,
        "pcap": pcap.name, "labels": labels.name, "pcap_bytes": pcap.stat().st_size,
        "sha256": {"pcap": _sha256(pcap), "labels": _sha256(labels)},
        "note": "lab traffic on loopback in a private namespace; do not expect results to transfer to real networks",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: manifest[k] for k in ("packets", "per_type", "flows_5tuple", "non_loopback_packets",
                                                "attack_outside_window", "sha256")}, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--inside-namespace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inside_namespace:
        inside(args.size, args.seed, args.out.resolve())
        return 0
    if os.geteuid() != 0:
        print("make_capture: needs root (to create a network namespace)", file=sys.stderr)
        return 2
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"make_capture: missing tools: {' '.join(missing)} (apt-get install tcpdump nmap hping3 mosquitto "
              "hydra slowhttptest iproute2)", file=sys.stderr)
        return 2
    deadline = SIZES[args.size]["deadline"] + 60
    env = dict(os.environ, **{_ENV_PARENT_NS: str(netns_inode())})
    cmd = ["timeout", "-k", "5", str(deadline), "unshare", "--net", "--pid", "--fork", "--kill-child",
           "--mount-proc", sys.executable, "-m", "sln.security.capture", "--inside-namespace",
           "--size", args.size, "--seed", str(args.seed), "--out", str(args.out.resolve())]
    return subprocess.run(cmd, env=env, cwd=Path(__file__).resolve().parents[2]).returncode


if __name__ == "__main__":
    raise SystemExit(main())
