#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_http_head, fuzz_dialect and fuzz_profile into
tests/fuzz/corpus/<target>/. Re-run after changing the encodings; libFuzzer mutates from here."""
import base64
import os
import pathlib

root = pathlib.Path(__file__).resolve().parent / "corpus"


def put(target, name, data):
    d = root / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# ---- http_head: byte 0 = limits (bits 0-1) and chunking seed -------------------------------
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
up = ("GET /ws/room1?client=abcd HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
      "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n"
      f"Sec-WebSocket-Key: {KEY}\r\nOrigin: http://127.0.0.1:8080\r\n\r\n")
put("http_head", "upgrade", b"\x00" + up.encode() + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")
put("http_head", "get_keepalive_pipelined",
    b"\x04GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
put("http_head", "post_body",
    b"\x08POST /api/invite HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\n{\"a\"}")
put("http_head", "http10", b"\x0cGET /x?y=z HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
put("http_head", "smuggle_cl_te",
    b"\x10POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
put("http_head", "dup_cl", b"\x14POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")
put("http_head", "obs_fold", b"\x18GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  2\r\n\r\n")
put("http_head", "bare_lf", b"\x1cGET / HTTP/1.1\nHost: a\n\n")
put("http_head", "tiny_limits", b"\x01GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n")
put("http_head", "version2", b"\x20GET / HTTP/2.0\r\nHost: a\r\n\r\n")
put("http_head", "leading_crlf", b"\x24\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
put("http_head", "bad_key", b"\x28" + up.replace(KEY, "short").encode())
put("http_head", "two_versions", b"\x2c" + up.replace("\r\n\r\n", "\r\nSec-WebSocket-Version: 8\r\n\r\n").encode())


# ---- dialect: byte 0 = dialect (0 link, 1 bench, 2 raw, 3 relay, 4 socketio); records [op|sess<<3][len][payload] --
def rec(op, sess, payload=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    if n < 0xF0:
        head = bytes([n])
    else:
        assert n < 4096
        head = bytes([0xF0 | (n >> 8), n & 0xFF])
    return bytes([op | (sess << 3)]) + head + payload


UPG, TEXT, BIN, CLOSE, ADV, HTTP, RATE, POST = range(8)
iv = base64.urlsafe_b64encode(b"\x01" * 12).rstrip(b"=").decode()
ct = base64.urlsafe_b64encode(b"secret!" * 5).rstrip(b"=").decode()
link = b"\x00" + rec(UPG, 0, "/ws/room1?client=alice") + rec(UPG, 1, "/ws/room1?client=bob1") \
    + rec(TEXT, 0, f'{{"type":"message","iv":"{iv}","ciphertext":"{ct}"}}') \
    + rec(TEXT, 1, f'{{"type":"message","iv":"{iv}","ciphertext":"{ct}","to":"alice"}}') \
    + rec(POST, 0) + rec(TEXT, 0, '{"type":"clear_history"}') + rec(CLOSE, 1) + rec(ADV, 0, b"\x20")
put("dialect", "link_chat", link)
put("dialect", "link_auth", b"\x00" + rec(UPG, 0, "/ws/pw-room?client=carol") +
    rec(TEXT, 0, '{"type":"auth","password":"hunter2","create":true}') + rec(ADV, 0, b"\x0a") +
    rec(UPG, 1, "/ws/pw-room?client=dave") + rec(TEXT, 1, '{"type":"auth","password":"nope"}') +
    rec(TEXT, 1, f'{{"type":"message","iv":"{iv}","ciphertext":"{ct}"}}'))
put("dialect", "link_bad", b"\x00" + rec(UPG, 0, "/ws/r?client=eve_") +
    b"".join(rec(TEXT, 0, m) for m in ['{', '[]', '{"type":1}', '{"type":"message","iv":"!!","ciphertext":""}',
                                       '{"type":"message","iv":"' + iv + '","ciphertext":"' + "A" * 300 + '","to":"x"}',
                                       '{"type":"message","type":"message"}', '"\\ud800"']) +
    rec(BIN, 0, b"\x00\x01") + rec(RATE, 0))
put("dialect", "link_http", b"\x00" + rec(HTTP, 0, "/api/room/room1/info") + rec(HTTP, 0, "/new_chat") +
    rec(HTTP, 0, "/room/abc") + rec(HTTP, 0, "/api/room/%2e%2e/info"))
bench = b"\x01" + rec(UPG, 0, "/ws") + rec(UPG, 1, "/ws") + \
    rec(TEXT, 0, '{"type":"join","roomId":"r1","adminHash":"' + "a" * 64 + '","payload":""}') + \
    rec(TEXT, 1, '{"type":"join","roomId":"r1","payload":"bob"}') + \
    rec(TEXT, 0, '{"type":"message","roomId":"r1","payload":"' + ct + '"}') + \
    rec(TEXT, 1, '{"type":"image","roomId":"r1","payload":"' + "Q" * 600 + '"}') + \
    rec(TEXT, 0, '{"type":"request_pair","roomId":"r1","payload":""}') + \
    rec(TEXT, 1, '{"type":"claim_pair","roomId":"r1","payload":"123456"}') + \
    rec(TEXT, 0, '{"type":"ban_client","roomId":"r1","adminHash":"' + "a" * 64 + '","payload":"2"}') + \
    rec(TEXT, 0, '{"type":"make_public","roomId":"r1","adminHash":"' + "a" * 64 + '"}') + \
    rec(TEXT, 0, '{"type":"delete","roomId":"r1","adminHash":"' + "a" * 64 + '"}') + rec(ADV, 0, b"\xff")
put("dialect", "bench_room", bench)
put("dialect", "bench_http", b"\x01" + rec(HTTP, 0, "/health") + rec(HTTP, 0, "/join/abcdef") +
    rec(HTTP, 0, "/room") + rec(HTTP, 0, "/"))
put("dialect", "bench_bad", b"\x01" + rec(UPG, 0, "/ws") + b"".join(
    rec(TEXT, 0, m) for m in ['{"type":"join"}', '{"type":"join","roomId":5}', '{"type":"nope"}',
                              '{"roomId":"' + "x" * 200 + '"}', 'null', '{"type":"message","payload":"x"}']))
put("dialect", "raw", b"\x02" + rec(UPG, 0, "/ws/echo") + rec(UPG, 1, "/ws/r") + rec(UPG, 2, "/ws/r") +
    rec(TEXT, 0, "hi") + rec(BIN, 0, b"\x00") + rec(TEXT, 1, "to room") + rec(BIN, 1, b"x") + rec(CLOSE, 2))

put("dialect", "relay_preauth", b"\x03" + rec(UPG, 0, "/ws") + rec(UPG, 1, "/ws") +
    rec(TEXT, 0, '{"type":"auth","publicKey":"' + "A" * 43 + '=","signature":"' + "B" * 86 + '=="}') +
    rec(TEXT, 1, '{"type":"join_blob"}') + rec(ADV, 1, b"\xff") + rec(TEXT, 1, '{"type":"auth"}'))
put("dialect", "socketio", b"\x04" + rec(UPG, 0, "/socket.io/?EIO=4&transport=websocket") +
    rec(TEXT, 0, "40") + rec(TEXT, 0, '42["message",{"room":"r","text":"x"}]') + rec(TEXT, 0, "2"))

# ---- profile ---------------------------------------------------------------------------------
repo = root.parent.parent.parent
for f in sorted((repo / "etc").glob("*.yaml")):
    put("profile", "etc_" + f.stem, f.read_bytes())
put("profile", "rich", """greeting: hi
workers: 8
verbose: yes
buffer: 1.5M
timeout: 1h30m
mode: paranoid
tags: [a, b]
limits: {max_items: 5, window: 250ms}
routes:
  - {path: /x, weight: 3}
  - path: /y
secret: s3cret
""")
put("profile", "dup_and_alias", """profile: p
state_dir: &d var/p
store: *d
plugins:
  - name: a
    plugin: store-memory
    config: {history_limit: 10, history_limit: 11}
  - {name: a, plugin: nope, file: ./x.so}
""")
put("profile", "deep", "a: " + "[" * 80 + "]" * 80 + "\n")
put("profile", "two_docs", "profile: a\n---\nprofile: b\n")
put("profile", "scalars", "64KiB")
