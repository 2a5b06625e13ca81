"""Shared pieces of the hardening tests (tests/hardening/*.py): a minimal RFC 6455 client on raw
sockets (so tests control buffer sizes, trickle bytes and never-reading clients), a parleyd
launcher that writes a profile and waits for /healthz, /metrics scraping and /proc sampling.
Loopback only; every process a test starts is killed on exit."""

import atexit
import base64
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

HOST = "127.0.0.1"
_children = []
_tmpdirs = []


def _cleanup():
    for p in _children:
        if p.poll() is None:
            p.kill()
            p.wait()
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg):
    log("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def tmpdir(prefix="parley-hard-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def sanitizer_slowdown():
    """Instrumented builds (scripts/sanitize sets PARLEY_SANITIZER) are several times slower."""
    return {"asan": 3, "tsan": 8}.get(os.environ.get("PARLEY_SANITIZER", ""), 1)


# The kernel's line once every plugin instance has started ("profile 'x' running (...").
RUNNING = "' running ("


class Parleyd:
    """parleyd on a profile text (with @STATE@ replaced); output captured to a log file."""

    def __init__(self, profile_text, health_port, env=None, name="profile", state_dir=None,
                 wait=True, timeout=30):
        self.dir = tmpdir()
        self.state = state_dir or os.path.join(self.dir, "state")
        self.profile = os.path.join(self.dir, name + ".yaml")
        with open(self.profile, "w") as f:
            f.write(profile_text.replace("@STATE@", self.state))
        self.log_path = os.path.join(self.dir, "parleyd.log")
        self.port = health_port
        self.env = env
        self.proc = None
        self.start(wait=wait, timeout=timeout)

    def start(self, wait=True, timeout=30):
        bin_ = os.environ.get("PARLEYD")
        check(bin_ and os.path.exists(bin_), "PARLEYD must name the parleyd binary")
        self._started_before = self.logs().count(RUNNING) if os.path.exists(self.log_path) else 0
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([bin_, self.profile], stdout=logf, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(self.env or {})},
                                     preexec_fn=raise_nofile)
        logf.close()
        _children.append(self.proc)
        if wait:
            self.wait_healthy(timeout * sanitizer_slowdown())

    def wait_healthy(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                fail(f"parleyd exited ({self.proc.returncode}) before healthy:\n{self.logs()[-3000:]}")
            # One listener answering is not enough: the others may still be starting (each
            # transport's start runs in turn); the kernel logs RUNNING once all have.
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=1) as r:
                    if r.status == 200 and self.logs().count(RUNNING) > self._started_before:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        fail(f"parleyd not healthy after {timeout}s:\n{self.logs()[-3000:]}")

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout * sanitizer_slowdown())
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail("parleyd did not exit on SIGTERM")
        return self.proc.returncode

    def proc_stats(self):
        """RSS (KiB), open fds and threads of the running parleyd."""
        pid = self.proc.pid
        with open(f"/proc/{pid}/status") as f:
            st = f.read()
        rss = int(re.search(r"VmRSS:\s+(\d+)", st).group(1))
        threads = int(re.search(r"Threads:\s+(\d+)", st).group(1))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return {"rss_kb": rss, "fds": fds, "threads": threads}


def metrics(port):
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def metric_sum(m, prefix, must_contain=""):
    return sum(v for k, v in m.items() if k.startswith(prefix) and must_contain in k)


class HandshakeRefused(Exception):
    def __init__(self, status, head):
        super().__init__(f"upgrade refused: {status}")
        self.status = status
        self.head = head


def upgrade_request(port, path):
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://{HOST}:{port}\r\n\r\n").encode()


def encode_frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return head + mask + masked


class WS:
    """A blocking WebSocket client. `rcvbuf` shrinks the socket's receive buffer before connect
    (a slow reader then stalls the server's writes after a few KiB instead of hundreds)."""

    def __init__(self, port, path, timeout=10, rcvbuf=None, connect_only=False):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, port))
        self.buf = b""
        self.closed_code = None
        if not connect_only:
            self.sock.sendall(upgrade_request(port, path))
            self.finish_upgrade()

    def finish_upgrade(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise HandshakeRefused(0, self.buf)
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            raise HandshakeRefused(status, head)

    def send_text(self, text):
        self.sock.sendall(encode_frame(0x1, text.encode() if isinstance(text, str) else text))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by peer")
            self.buf += chunk

    def recv(self):
        """(opcode, payload) of the next frame; Close frames set closed_code."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        opcode = b0 & 0x0F
        if opcode == 0x8:
            self.closed_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        elif opcode == 0x9:
            self.sock.sendall(encode_frame(0xA, payload))
        return opcode, payload

    def recv_text(self):
        while True:
            op, payload = self.recv()
            if op == 0x1:
                return payload.decode()
            if op == 0x8:
                raise ConnectionError(f"closed with {self.closed_code}")

    def close(self):
        try:
            self.sock.sendall(encode_frame(0x8, struct.pack("!H", 1000)))
        except OSError:
            pass
        self.sock.close()
