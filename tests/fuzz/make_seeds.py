#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_http_head, fuzz_dialect, fuzz_profile and
fuzz_nats_envelope (needs python3-cryptography) into tests/fuzz/corpus/<target>/. Re-run after
changing the encodings; libFuzzer mutates from here."""
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
put("http_head", "chunked_body",
    b"\x30POST /api/invite HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Sum: 9\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
put("http_head", "chunked_bad",
    b"\x35POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\nffffffffffffffffff\r\n")
put("http_head", "absolute_form",
    b"\x3cGET http://127.0.0.1:8080/ws/room1?client=ab HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
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

# ---- dialect, authenticated: byte0 / 5 bit 1 = auth mode; op 7 with payload[0] answers the
# challenge (0 allowlisted identity A, 1 A unpadded, 2 B not allowlisted, 3 wrong nonce, 4 replay)
AUTH = 7
SIO = "/socket.io/?EIO=4&transport=websocket"
put("dialect", "relay_authed", bytes([3 + 10]) + rec(UPG, 0, "/ws") + rec(AUTH, 0, b"\x00") +
    b"".join(rec(TEXT, 0, m) for m in [
        '{"type":"join_blob"}', '{"type":"join_room","roomId":"r1"}',
        '{"type":"signal","to":"1","data":{"sdp":"x"}}', '{"type":"members"}', '{"type":"nope"}',
        '{"type":"auth"}', '{"type":"join_blob","keyHash":"00"}', '{"type":"leave_blob"}',
        '{"type":"join_blob","keyHash":5}', '{"type":"leave_room"}', '[1]']) +
    rec(RATE, 0) + rec(ADV, 0, b"\xff") + rec(BIN, 0, b"\x01") + rec(CLOSE, 0))
put("dialect", "relay_auth_refusals", bytes([3 + 10]) + rec(UPG, 0, "/ws") + rec(AUTH, 0, b"\x00") +
    rec(UPG, 1, "/ws") + rec(AUTH, 1, b"\x02") + rec(UPG, 2, "/ws") + rec(AUTH, 2, b"\x03") +
    rec(UPG, 3, "/ws") + rec(AUTH, 3, b"\x04") + rec(UPG, 1, "/ws") + rec(AUTH, 1, b"\x01") +
    rec(TEXT, 1, '{"type":"join_blob"}') + rec(CLOSE, 1) + rec(CLOSE, 0))
put("dialect", "relay_sio_authed", bytes([3 + 10]) + rec(UPG, 0, SIO) + rec(AUTH, 0, b"\x00") +
    b"".join(rec(TEXT, 0, m) for m in [
        '42["join_blob"]', '42["join_room","r1","00",true]', '42["signal",{"to":"1"}]',
        '42["members"]', '42["nope"]', '42["auth",{}]', '2probe', '451-["x"]', '40']) +
    rec(ADV, 0, b"\xff") + rec(RATE, 0) + rec(CLOSE, 0))
put("dialect", "socketio_authed", bytes([4 + 10]) + rec(UPG, 0, SIO) + rec(AUTH, 0, b"\x00") +
    b"".join(rec(TEXT, 0, m) for m in [
        '42["join_blob","' + "0" * 64 + '"]', '42["leave_blob"]', '42["join_room","r1","aa",1]',
        '42["signal",{"to":"1","n":[1,2,{"x":null}]}]', '42["call_state"]', '41']) +
    rec(UPG, 1, SIO) + rec(AUTH, 1, b"\x01") + rec(UPG, 2, SIO) + rec(AUTH, 2, b"\x02") +
    rec(UPG, 3, SIO) + rec(TEXT, 3, "40") + rec(AUTH, 3, b"\x04"))
put("dialect", "relay_compat_authed", bytes([3 + 15]) + rec(UPG, 0, "/ws") +
    rec(TEXT, 0, '{"type":"join_room","keyHash":"00aa"}') + rec(AUTH, 0, b"\x00") +
    rec(UPG, 1, "/ws") + rec(AUTH, 1, b"\x00") + rec(TEXT, 1, '{"type":"join_blob","keyHash":"0"}') +
    rec(UPG, 2, SIO) + rec(AUTH, 2, b"\x00") + rec(TEXT, 2, '42["join_room","r","00"]'))
put("dialect", "socketio_compat_authed", bytes([4 + 15]) + rec(UPG, 0, SIO) + rec(TEXT, 0, "40") +
    rec(TEXT, 0, '42["join_blob","00"]') + rec(AUTH, 0, b"\x00") + rec(UPG, 1, SIO) +
    rec(AUTH, 1, b"\x00") + rec(TEXT, 1, '42["signal",{}]'))


# ---- nats_envelope: signed federation envelopes (format in plugins/transport-nats/federation.cpp)
def nats_envelope_seeds():
    import hashlib
    import struct
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        print("make_seeds: python3 cryptography missing, nats_envelope seeds not written")
        return
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw

    def key(fill):  # the harness's identities: Ed25519 seeds of 32 equal bytes
        sk = Ed25519PrivateKey.from_private_bytes(bytes([fill]) * 32)
        return sk, sk.public_key().public_bytes(*raw)

    P, Q, S = key(ord("P")), key(ord("Q")), key(ord("S"))
    now, skew = 1_700_000_000_000, 300_000
    h1 = hashlib.blake2b(b"parley-fed-room\nroom1", digest_size=16).hexdigest()
    room1, pair1 = "parley.fed.v1.room." + h1, "parley.fed.v1.pair." + h1

    def env(k, kind, seq, ts, body, subject):
        b = body.encode() if isinstance(body, str) else body
        data = b"PF1" + kind.encode() + k[1] + struct.pack(">Q", seq) + \
            struct.pack(">Q", ts & 0xFFFFFFFFFFFFFFFF) + b
        h = hashlib.blake2b(b"parley-fed-v1\0" + subject.encode() + b"\0" + data).digest()
        return data + k[0].sign(h)

    frame = '{"type":"message","payload":"aGk=","senderId":"1"}'
    ROOM, PAIR = b"\x00", b"\x01"  # raw modes; then the subject selector (0 room1 ... 2 pair1)
    put("nats_envelope", "room_valid", ROOM + b"\x00" + env(P, "M", 1, now, frame, room1))
    put("nats_envelope", "room_unpaired", ROOM + b"\x00" + env(Q, "M", 1, now, frame, room1))
    put("nats_envelope", "room_own", ROOM + b"\x00" + env(S, "M", 1, now, frame, room1))
    put("nats_envelope", "room_stale", ROOM + b"\x00" + env(P, "M", 2, now - skew - 1, frame, room1))
    put("nats_envelope", "room_future", ROOM + b"\x00" + env(P, "M", 3, now + skew, frame, room1))
    # A signed timestamp of INT64_MIN: now - ts overflowed int64_t before within_skew.
    put("nats_envelope", "room_ts_min", ROOM + b"\x00" + env(P, "M", 4, -(1 << 63), frame, room1))
    put("nats_envelope", "pair_ts_min", PAIR + b"\x02" + env(Q, "C", 4, -(1 << 63), b"x" * 49, pair1))
    put("nats_envelope", "room_moved", ROOM + b"\x01" + env(P, "M", 5, now, frame, room1))
    put("nats_envelope", "room_kind_c", ROOM + b"\x00" + env(P, "C", 6, now, frame, room1))
    bad = bytearray(env(P, "M", 7, now, frame, room1))
    bad[-1] ^= 1
    put("nats_envelope", "room_bad_sig", ROOM + b"\x00" + bytes(bad))
    put("nats_envelope", "room_short", ROOM + b"\x00" + env(P, "M", 8, now, "", room1)[:115])
    put("nats_envelope", "pair_claim", PAIR + b"\x02" + env(Q, "C", 9, now, b"t" * 16 + b"h" * 32 + b"bench-b", pair1))
    put("nats_envelope", "pair_approve", PAIR + b"\x02" + env(P, "A", 10, now, S[1] + b"h" * 32 + b"bench-a", pair1))
    put("nats_envelope", "pair_reject", PAIR + b"\x02" + env(P, "R", 11, now, S[1] + b"t" * 16 + b"token expired", pair1))
    put("nats_envelope", "pair_nodot", PAIR + b"\x04" + env(Q, "C", 12, now, b"", "nodot"))

    # Script mode: records the harness signs itself.
    def srec(signer=0, route=0, flip=False, cut=False, kind=0, seqd=1, tsd=0, pos=0, x=0, body=b"", raw_ts=None):
        flags = signer | route << 2 | flip << 5 | cut << 6 | (raw_ts is not None) << 7
        out = bytes([flags, kind, seqd & 0xFF]) + struct.pack(">hHB", tsd, pos, x) + bytes([len(body)])
        if raw_ts is not None:
            out += struct.pack(">Q", raw_ts & 0xFFFFFFFFFFFFFFFF)
        return out + body

    fb = frame.encode()
    put("nats_envelope", "script_replay", b"\x02" + srec(body=fb) + srec(seqd=0, body=fb) +
        srec(seqd=-10 & 0xFF, body=fb) + srec(seqd=-100 & 0xFF) + srec(seqd=127) + srec(seqd=-63 & 0xFF) +
        srec(seqd=-1 & 0xFF) + srec(seqd=-1 & 0xFF))
    put("nats_envelope", "script_stale", b"\x02" + srec(tsd=3000) + srec(tsd=3001) + srec(tsd=-3000) +
        srec(tsd=-3001) + srec(raw_ts=-(1 << 63)) + srec(raw_ts=(1 << 63) - 1) + srec(raw_ts=0))
    put("nats_envelope", "script_routes", b"\x02" + b"".join(srec(route=r, body=fb) for r in range(8)) +
        srec(signer=1) + srec(signer=2) + srec(signer=3) + srec(kind=4) + srec(kind=7, body=b"x"))
    put("nats_envelope", "script_mutate", b"\x02" + srec(flip=True, pos=3, x=1) + srec(flip=True, pos=40, x=0x80) +
        srec(flip=True, pos=0xFFFF, x=1, body=fb) + srec(cut=True, pos=100) + srec(cut=True, pos=500) +
        srec(flip=True, pos=60, x=4, body=fb))
    put("nats_envelope", "script_pairing", b"\x03" + srec(signer=1, route=2, kind=4, body=b"c" * 60) +
        srec(signer=0, route=2, kind=5, body=b"a" * 70) + srec(signer=1, route=2, kind=4, seqd=0) +
        srec(signer=1, route=2, kind=6, seqd=-2 & 0xFF) + srec(signer=2, route=2, kind=4) +
        srec(signer=0, route=2, kind=7, seqd=0))
    # Pairing bodies whose proof part the harness writes (kind bit 3; bits 4-7 spoil one input).
    put("nats_envelope", "script_pairing_proofs", b"\x02" + b"".join(
        srec(signer=s, route=2, kind=k | 8 | spoil, body=b"bench-" + bytes([0x61 + n]))
        for n, (s, k, spoil) in enumerate([(1, 4, 0), (0, 5, 0), (0, 6, 0), (1, 4, 0x10), (1, 4, 0x20),
                                           (1, 4, 0x40), (0, 5, 0x80), (0, 5, 0x20), (0, 6, 0x10),
                                           (0, 6, 0x80)])))


nats_envelope_seeds()
