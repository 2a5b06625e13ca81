#!/usr/bin/env python3
"""Soak: mixed traffic against one parleyd (link-room and bench listeners, store-memory) for
SOAK_SECONDS (default 60; scripts/soak runs 1800), sampling parleyd's RSS, open fds and
threads every SOAK_SAMPLE seconds (default 5). Traffic: stable members in 4 link rooms and 4
bench rooms send a message every 200 ms and read everything; churners connect, send a few
messages and leave every 250 ms (link and bench alternately).

Fails when, after a warm-up (the first 20 %, at least 10 s), RSS grows past the warm-up's value
by more than max(16 MiB, 25 %), open fds by more than 16, threads at all, when a stable member is
cut, or when stable members stop receiving. Writes the samples as CSV to SOAK_CSV if set."""
import base64
import json
import os
import random
import threading
import time

from hlib import WS, Parleyd, check, free_port, log, metric_sum, metrics, sanitizer_slowdown

DURATION = float(os.environ.get("SOAK_SECONDS", "60"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE", "5"))
SLOW = sanitizer_slowdown()
ROOMS = 4

link_port, bench_port, link_metrics, bench_metrics = (free_port() for _ in range(4))
profile = f"""
profile: soak
state_dir: "@STATE@"
store: history
log: {{level: info, format: json}}
limits: {{max_connections: 10000, rooms_per_connection: 1, members_per_room: 256}}
drain: {{grace: 200ms}}
plugins:
  - name: history
    plugin: store-memory
    config: {{history_limit: 10, history_ttl: 10m, max_bytes: 16M}}
  - name: link
    plugin: transport-ws
    config: {{port: {link_port}, protocol: link, threads: 1, metrics_port: {link_metrics},
             rate: 100, burst: 200, shared_room_names: true, link: {{rooms_per_ip: 1000000}}}}
  - name: bench
    plugin: transport-ws
    config: {{port: {bench_port}, protocol: bench, threads: 1, metrics_port: {bench_metrics},
             rate: 100, burst: 200, shared_room_names: true, bench: {{rooms_per_ip: 1000000}}}}
"""
d = Parleyd(profile, link_port)
stop = threading.Event()


class Errors(list):
    def append(self, e):  # logged at once: the first one explains the rest
        log("error: " + e)
        super().append(e)


errors = Errors()
received = {"link": 0, "bench": 0}
lock = threading.Lock()


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


IV = b64(os.urandom(12))


def link_msg():
    return json.dumps({"type": "message", "iv": IV, "ciphertext": b64(os.urandom(random.randint(16, 2048)))})


def bench_msg(room):
    return json.dumps({"type": "message", "roomId": room,
                       "payload": base64.b64encode(os.urandom(random.randint(16, 2048))).decode()})


def link_client(room, cid):
    ws = WS(link_port, f"/ws/soak-{room}?client={cid}", timeout=30 * SLOW)
    while json.loads(ws.recv_text()).get("type") != "history":
        pass
    return ws


def bench_client(room):
    ws = WS(bench_port, "/ws", timeout=30 * SLOW)
    ws.send_text(json.dumps({"type": "join", "roomId": f"soak-{room}", "adminHash": "", "payload": "m"}))
    while True:
        f = json.loads(ws.recv_text())
        if f.get("type") == "welcome":
            return ws
        if f.get("type") == "error":
            raise RuntimeError(f"bench join refused: {f.get('payload')}")


def stable(kind, room, idx):
    try:
        ws = link_client(room, f"st{room}x{idx}") if kind == "link" else bench_client(room)
    except Exception as e:  # noqa: BLE001 - recorded and failed on below
        errors.append(f"{kind} stable member {room}/{idx} could not join: {e}")
        return

    def reader():
        try:
            while not stop.is_set():
                f = json.loads(ws.recv_text())
                if f.get("type") == "message":
                    with lock:
                        received[kind] += 1
                elif f.get("type") == "error":
                    errors.append(f"{kind} stable member got an error: {f}")
        except Exception as e:  # noqa: BLE001
            if not stop.is_set():
                errors.append(f"{kind} stable member {room}/{idx} cut: {e}")

    threading.Thread(target=reader, daemon=True).start()
    while not stop.wait(0.2):
        try:
            ws.send_text(link_msg() if kind == "link" else bench_msg(f"soak-{room}"))
        except OSError as e:
            if not stop.is_set():
                errors.append(f"{kind} stable member {room}/{idx} send failed: {e}")
            return
    ws.close()


def churn():
    n = 0
    while not stop.wait(0.25):
        n += 1
        room = random.randrange(ROOMS)
        try:
            if n % 2:
                ws = link_client(room, f"ch{n % 100000:05d}")
                for _ in range(3):
                    ws.send_text(link_msg())
            else:
                ws = bench_client(room)
                for _ in range(3):
                    ws.send_text(bench_msg(f"soak-{room}"))
            if n % 7 == 0:
                ws.sock.close()  # an abrupt disconnect now and then, no Close frame
            else:
                ws.close()
        except Exception as e:  # noqa: BLE001
            errors.append(f"churn client {n} failed: {e}")


threads = [threading.Thread(target=stable, args=(k, r, i), daemon=True)
           for k in ("link", "bench") for r in range(ROOMS) for i in range(2)]
threads.append(threading.Thread(target=churn, daemon=True))
for t in threads:
    t.start()

samples = []
t0 = time.time()
warmup = max(10.0, DURATION * 0.2)
while time.time() - t0 < DURATION:
    time.sleep(SAMPLE)
    s = d.proc_stats()
    s["t"] = round(time.time() - t0, 1)
    with lock:
        s["link_msgs"], s["bench_msgs"] = received["link"], received["bench"]
    samples.append(s)
    if len(samples) % max(1, int(60 / SAMPLE)) == 0:
        log(f"t={s['t']}s rss={s['rss_kb']} KiB fds={s['fds']} threads={s['threads']} "
            f"received link={s['link_msgs']} bench={s['bench_msgs']}")
    if errors:
        break
stop.set()
time.sleep(0.5)
m = metrics(link_metrics)
accepted = metric_sum(m, "parley_ws_accepted_total") + metric_sum(metrics(bench_metrics), "parley_ws_accepted_total")

if os.environ.get("SOAK_CSV"):
    with open(os.environ["SOAK_CSV"], "w") as f:
        f.write("t_s,rss_kb,fds,threads,link_msgs,bench_msgs\n")
        for s in samples:
            f.write(f"{s['t']},{s['rss_kb']},{s['fds']},{s['threads']},{s['link_msgs']},{s['bench_msgs']}\n")

check(not errors, "errors during the soak:\n" + "\n".join(errors[:10]))
after = [s for s in samples if s["t"] >= warmup]
check(len(after) >= 2, "too few samples after the warm-up: lengthen SOAK_SECONDS")
ref = [s for s in samples if s["t"] < warmup][-1] if samples[0]["t"] < warmup else samples[0]
rss_max = max(s["rss_kb"] for s in after)
fds_max = max(s["fds"] for s in after)
thr_max = max(s["threads"] for s in after)
rss_bound = ref["rss_kb"] + max(16 * 1024, ref["rss_kb"] // 4)
summary = (f"soak {DURATION:.0f}s: connections accepted {accepted:.0f}, messages received "
           f"link {samples[-1]['link_msgs']} bench {samples[-1]['bench_msgs']}; RSS {ref['rss_kb']} -> "
           f"max {rss_max} KiB (bound {rss_bound}), fds {ref['fds']} -> max {fds_max}, "
           f"threads {ref['threads']} -> max {thr_max}")
log(summary)
if os.environ.get("PARLEY_SANITIZER") == "asan":
    # ASan's quarantine keeps freed memory (up to 256 MiB) resident: RSS says nothing there;
    # LeakSanitizer checks for leaks when parleyd exits instead.
    log("RSS bound not applied under ASan")
else:
    check(rss_max <= rss_bound, "RSS grew beyond the bound")
check(fds_max <= ref["fds"] + 16, "open fds grew")
check(thr_max <= ref["threads"], "threads grew")
# Stable members kept receiving until the end (the last interval saw traffic).
check(samples[-1]["link_msgs"] > samples[-2]["link_msgs"], "link members stopped receiving")
check(samples[-1]["bench_msgs"] > samples[-2]["bench_msgs"], "bench members stopped receiving")
check(d.stop() == 0, "parleyd did not exit 0 on SIGTERM")
log("PASS")
