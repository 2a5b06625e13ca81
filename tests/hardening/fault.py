#!/usr/bin/env python3
"""Fault injection with real components. Run under tests/integration/pg_env.sh (PARLEY_TEST_PG).

 1. kill -9 of parleyd (link-room on store-pg) right after a burst of messages every member saw
    live (fan-out follows COMMIT), then a restart on the same state directory (stale control
    socket left behind): the restart succeeds and the history holds every message, in order.
 2. a state directory parleyd cannot use makes it exit non-zero at start with a clear error,
    a regular file, a path below a regular file, a read-only file system,
    a full file system (no inode left for the control socket). The last two need a private
    mount namespace (unshare -m, root); without one they are reported as skipped.
"""
import base64
import json
import os
import shutil
import subprocess
import time

from hlib import WS, Parleyd, check, free_port, log, sanitizer_slowdown, tmpdir

PG = os.environ.get("PARLEY_TEST_PG")
check(PG, "PARLEY_TEST_PG is not set (run under tests/integration/pg_env.sh)")
SLOW = sanitizer_slowdown()


def link_profile(port, state="@STATE@"):
    return f"""
profile: fault-pg
state_dir: "{state}"
store: history
log: {{level: info, format: json}}
drain: {{grace: 200ms}}
plugins:
  - name: history
    plugin: store-pg
    config: {{conninfo: "{PG}", history_limit: 100, history_ttl: 1h}}
  - name: web
    plugin: transport-ws
    config: {{port: {port}, protocol: link, threads: 1, rate: 1000, burst: 1000, link: {{history: 100}}}}
"""


def join(port, room, client):
    ws = WS(port, f"/ws/{room}?client={client}", timeout=15 * SLOW)
    while True:
        f = json.loads(ws.recv_text())
        if f.get("type") == "history":
            return ws, f["messages"]


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# ---- 1. kill -9 and restart ----------------------------------------------------------------
port = free_port()
d = Parleyd(link_profile(port), port)
sender, _ = join(port, "crashroom", "alice01")
watcher, _ = join(port, "crashroom", "watch01")
iv = b64(b"\x07" * 12)
texts = [f"burst-{i:03d}" for i in range(40)]
for t in texts:
    sender.send_text(json.dumps({"type": "message", "iv": iv, "ciphertext": b64(t.encode())}))
seen = []
deadline = time.time() + 20 * SLOW
while len(seen) < len(texts) and time.time() < deadline:
    f = json.loads(watcher.recv_text())
    if f.get("type") == "message":
        seen.append(base64.urlsafe_b64decode(f["ciphertext"] + "==").decode())
check(seen == texts, f"the watcher saw {len(seen)} of {len(texts)} messages live")
d.kill9()
log("parleyd killed with SIGKILL after 40 acknowledged messages")
sock = os.path.join(d.state, "control.sock")
log(f"stale control socket left behind: {os.path.exists(sock)}")
d.start()
_, history = join(port, "crashroom", "late001")
got = [base64.urlsafe_b64decode(m["ciphertext"] + "==").decode() for m in history]
check(got == texts, f"history after kill -9 has {len(got)} messages: {got[:3]}...")
log("restart after kill -9: all 40 messages in the history, in order")
check(d.stop() == 0, "parleyd did not exit 0 on SIGTERM after the restart")


# ---- 2. unusable state directories ---------------------------------------------------------
def expect_refusal(what, state, wrap=None):
    """parleyd on a profile whose state_dir is `state` must exit non-zero, clearly, fast."""
    port = free_port()
    work = tmpdir()
    profile = os.path.join(work, "p.yaml")
    with open(profile, "w") as f:
        f.write(link_profile(port, state))
    cmd = [os.environ["PARLEYD"], profile]
    if wrap:
        cmd = wrap + cmd
    t0 = time.time()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30 * SLOW)
    except subprocess.TimeoutExpired:
        check(False, f"{what}: parleyd kept running")
    out = r.stdout + r.stderr
    check(r.returncode != 0, f"{what}: parleyd exited 0")
    lines = [ln for ln in out.splitlines() if "state directory" in ln or "control socket" in ln]
    check(lines, f"{what}: no error naming the state directory or control socket:\n{out[-2000:]}")
    log(f"{what}: exit {r.returncode} after {time.time() - t0:.1f}s: {lines[0][:160]}")


base = tmpdir()
plain = os.path.join(base, "a-file")
open(plain, "w").close()
expect_refusal("state_dir is a regular file", plain)
expect_refusal("state_dir below a regular file", os.path.join(plain, "state"))
if os.geteuid() != 0:
    ro = os.path.join(base, "ro")
    os.mkdir(ro, 0o555)
    expect_refusal("state_dir not writable (mode 0555)", ro)

ns_ok = shutil.which("unshare") and subprocess.run(
    ["unshare", "-m", "true"], capture_output=True).returncode == 0
if not ns_ok:
    log("SKIP read-only and full file system cases: no private mount namespace (unshare -m)")
else:
    mnt = tmpdir()
    # Read-only file system: a tmpfs mounted ro in parleyd's own mount namespace.
    expect_refusal("read-only file system", os.path.join(mnt, "state"),
                   ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o ro,size=64k tmpfs {mnt} && "
                    'exec "$@"', "sh"])
    # Full file system: the state directory exists, but no inode is left for the socket.
    fill = (f"mount -t tmpfs -o size=64k,nr_inodes=8 tmpfs {mnt} && mkdir {mnt}/state && "
            f"i=0; while touch {mnt}/f$i 2>/dev/null; do i=$((i+1)); done; exec \"$@\"")
    expect_refusal("full file system (no inodes)", os.path.join(mnt, "state"),
                   ["unshare", "-m", "sh", "-c", fill, "sh"])
log("PASS")
