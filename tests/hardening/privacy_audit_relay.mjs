// Privacy audit of the relay profile (etc/relay.yaml's shape, on store-pg, log.level trace:
// debug and below). Four identities prove their Ed25519 keys, two on the relay WebSocket
// dialect (/ws) and two through npm socket.io-client (/socket.io/), with refused attempts too;
// they exchange blobs over the signed HTTP API with join_blob/refresh, run calls through the
// signaling plugin (offer/answer/ICE candidates with realistic SDP, an end-to-end payload,
// call_state, error paths) and ask for TURN credentials before and after the TURN secret file
// is rotated; then a reload to compat mode (Relay's unproven clients: claimed key hashes)
// and the same on /ws and Socket.IO. Clients connect from a distinctive loopback address.
// Then neither parleyd's output, nor its state directory, nor a pg_dump may hold an identity
// secret key, a signature, a challenge nonce, the TURN secret, an issued TURN credential,
// SDP/ICE content, the database password or a client or candidate address (raw, hex, base64,
// base64url, JSON-escaped); key hashes, public keys and blob ids stay out of the log; stored
// blobs keep no send time (only a blurred, minute-granular expiry, no other column).
// And PostgreSQL's own server log. Run under tests/integration/pg_env.sh. Env: PARLEYD,
// PARLEY_CLI, PARLEY_TEST_PG, PARLEY_TEST_PG_DIR.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startParleyd } from '../browser/lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(HERE, '../browser/package.json'));
const WebSocket = require('ws');
const nacl = require('tweetnacl');
const { io } = require('socket.io-client');

const { PARLEYD, PARLEY_CLI: CLI, PARLEY_TEST_PG: PG } = process.env;
if (!PARLEYD || !CLI || !PG || !process.env.PARLEY_TEST_PG_DIR) throw new Error('PARLEYD, PARLEY_CLI and PARLEY_TEST_PG(_DIR) must be set');

// Every client socket comes from this loopback address, so it can be told apart from the
// listener's 127.0.0.1 in startup lines (all of 127/8 is local on Linux).
const CLIENT_IP = '127.83.19.201';
// Public-looking candidate addresses (documentation ranges) that only the SDP carries.
const CAND_IP4 = '198.51.100.23';
const CAND_IP6 = '2001:db8:7:1::23';
const AUTH_PREFIX = 'parley-relay-auth-v1\n';

const b64 = (b) => Buffer.from(b).toString('base64');
const b64url = (b) => Buffer.from(b).toString('base64url');
const sha256hex = (d) => crypto.createHash('sha256').update(d).digest('hex');
const rand = (n) => crypto.randomBytes(n).toString('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every form a secret could leak in: as is, hex (bytea in a dump), base64, base64url; for a
// string that is itself base64 (nonces, signatures, credentials) also its decoded bytes.
function forms(secret) {
  const buf = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
  const out = [buf.toString('hex'), b64(buf).replace(/=+$/, ''), b64url(buf)];
  if (!Buffer.isBuffer(secret)) {
    out.push(secret, JSON.stringify(secret).slice(1, -1)); // as is, and inside a JSON string
    if (/^[A-Za-z0-9+/]{16,}={0,2}$/.test(secret)) out.push(...forms(Buffer.from(secret, 'base64')));
  }
  return [...new Set(out.filter((f) => f.length >= 8))];
}

// An IPv4 address as text, IPv4-mapped IPv6, hex (both byte orders) and a 32-bit integer.
function ipForms(ip) {
  const o = ip.split('.').map(Number);
  const hex = Buffer.from(o).toString('hex');
  return [ip, `::ffff:${ip}`, hex, Buffer.from(o).reverse().toString('hex'), String(Buffer.from(o).readUInt32BE())];
}

function pgBin(name) {
  for (const d of fs.readdirSync('/usr/lib/postgresql').sort().reverse()) {
    const p = `/usr/lib/postgresql/${d}/bin/${name}`;
    if (fs.existsSync(p)) return p;
  }
  return name;
}

// A realistic browser SDP: addresses in o=/c=/candidate lines, ICE credentials and a DTLS
// fingerprint unique to this run.
function makeSdp(type, secrets, tag) {
  const ufrag = rand(8);
  const pwd = rand(12);
  const fp = crypto.randomBytes(32).toString('hex').toUpperCase().match(/../g).join(':');
  secrets[`${tag}IceUfrag`] = ufrag;
  secrets[`${tag}IcePwd`] = pwd;
  secrets[`${tag}Fingerprint`] = fp;
  const sdp = [
    'v=0',
    `o=- ${BigInt('0x' + rand(7))} 2 IN IP4 127.0.0.1`,
    's=-', 't=0 0', 'a=group:BUNDLE 0', 'a=extmap-allow-mixed', 'a=msid-semantic: WMS stream0',
    'm=audio 51234 UDP/TLS/RTP/SAVPF 111 63',
    'c=IN IP4 127.0.0.1',
    'a=rtcp:9 IN IP4 0.0.0.0',
    `a=candidate:842163049 1 udp 2122260223 127.0.0.1 51234 typ host generation 0 network-id 1`,
    `a=candidate:1467250027 1 udp 1686052607 ${CAND_IP4} 51234 typ srflx raddr 127.0.0.1 rport 51234 generation 0`,
    `a=candidate:2999745851 1 udp 2122262783 ${CAND_IP6} 51235 typ host generation 0`,
    `a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`, 'a=ice-options:trickle',
    `a=fingerprint:sha-256 ${fp}`,
    `a=setup:${type === 'offer' ? 'actpass' : 'active'}`,
    'a=mid:0', 'a=sendrecv', 'a=rtcp-mux', 'a=rtpmap:111 opus/48000/2', 'a=fmtp:111 minptime=10;useinbandfec=1',
    `a=ssrc:${crypto.randomInt(1, 2 ** 31)} cname:${rand(8)}`,
    '',
  ].join('\r\n');
  secrets[`${tag}Sdp`] = sdp;
  return sdp;
}

function makeCandidate(secrets, tag) {
  const ufrag = rand(8);
  secrets[`${tag}CandUfrag`] = ufrag;
  const candidate = `candidate:${crypto.randomInt(1, 2 ** 31)} 1 udp 1686052607 ${CAND_IP4} ${crypto.randomInt(40000, 60000)} typ srflx raddr 127.0.0.1 rport 51234 generation 0 ufrag ${ufrag} network-id 1`;
  secrets[`${tag}Candidate`] = candidate;
  return { candidate, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: ufrag };
}

// Signed relay API request from CLIENT_IP.
function api(port, method, target, keyPair, secrets, body = Buffer.alloc(0)) {
  const ts = String(Math.floor(Date.now() / 1000));
  const sig = nacl.sign.detached(Buffer.from(`${method}\n${target}\n${ts}\n${sha256hex(body)}`), keyPair.secretKey);
  secrets[`apiSig${Object.keys(secrets).length}`] = Buffer.from(sig);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, method, path: target, localAddress: CLIENT_IP,
      headers: {
        'Content-Type': 'application/octet-stream', 'Content-Length': body.length,
        'X-Parley-Key': b64(keyPair.publicKey), 'X-Parley-Timestamp': ts, 'X-Parley-Signature': b64(sig),
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// ---- relay WebSocket dialect client ----
function wsClient(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { localAddress: CLIENT_IP });
  const c = { ws, frames: [], closed: null, waiters: [] };
  const wake = () => { for (const w of c.waiters.splice(0)) w(); };
  ws.on('message', (data, isBinary) => { if (!isBinary) { c.frames.push(JSON.parse(data.toString())); wake(); } });
  ws.on('close', (code) => { c.closed = code; wake(); });
  ws.on('error', () => {});
  c.send = (o) => ws.send(JSON.stringify(o));
  c.emit = (type, ...args) => c.send({ type, args });
  c.next = async (pred, what, ms = 8000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = c.frames.findIndex(pred);
      if (i >= 0) return c.frames.splice(i, 1)[0];
      if (c.closed !== null) throw new Error(`closed (${c.closed}) waiting for ${what}; ${JSON.stringify(c.frames)}`);
      if (Date.now() > deadline) throw new Error(`no ${what}; have ${JSON.stringify(c.frames)}`);
      await new Promise((r) => { c.waiters.push(r); setTimeout(r, 100); });
    }
  };
  c.event = (type) => c.next((f) => f.type === type, type);
  return c;
}

async function wsAuthed(port, m, secrets) {
  const c = wsClient(port);
  const { nonce } = await c.event('challenge');
  secrets[`nonce${Object.keys(secrets).length}`] = nonce;
  const sig = nacl.sign.detached(Buffer.from(AUTH_PREFIX + nonce), m.keyPair.secretKey);
  secrets[`authSig${Object.keys(secrets).length}`] = Buffer.from(sig);
  c.send({ type: 'auth', publicKey: b64(m.keyPair.publicKey), signature: b64(sig) });
  assert.equal((await c.event('authed')).keyHash, m.keyHash);
  return c;
}

// ---- Socket.IO client ----
function sioClient(url) {
  const s = io(url, { path: '/socket.io', transports: ['websocket'], reconnection: false, timeout: 5000, localAddress: CLIENT_IP });
  s.next = (event, ms = 8000) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`socket.io: no ${event} within ${ms} ms`)), ms);
    s.once(event, (...args) => { clearTimeout(t); resolve(args); });
  });
  return s;
}

async function sioAuthed(url, m, secrets) {
  const s = sioClient(url);
  const [{ nonce }] = await s.next('challenge');
  secrets[`sioNonce${Object.keys(secrets).length}`] = nonce;
  const sig = nacl.sign.detached(Buffer.from(AUTH_PREFIX + nonce), m.keyPair.secretKey);
  secrets[`sioAuthSig${Object.keys(secrets).length}`] = Buffer.from(sig);
  const authed = s.next('authed');
  s.emit('auth', { publicKey: b64(m.keyPair.publicKey), signature: b64(sig) });
  assert.equal((await authed)[0].keyHash, m.keyHash);
  return s;
}

const derivedRoom = (...hashes) => 'room-' + b64url(crypto.createHash('sha256').update([...hashes].sort().join(',')).digest());
const turnValid = (secret, c) => crypto.createHmac('sha1', secret).update(c.username).digest('base64') === c.credential;

test('privacy audit, relay profile: /ws, Socket.IO, signaling and TURN leave no secret, SDP or address in logs or PostgreSQL', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-privacy-relay-'));
  const port = await freePort();
  execFileSync(CLI, ['identities', 'generate', '--count', '4', '--out', path.join(tmp, 'ids'), '--circle', 'audit'], { stdio: 'pipe' });
  const secrets = {};   // must appear nowhere (log, pg_dump)
  const logOnly = {};   // legitimately stored in PostgreSQL, but never logged
  const [alice, bob, carol, dave] = [1, 2, 3, 4].map((i) => {
    const j = JSON.parse(fs.readFileSync(path.join(tmp, 'ids', `identity-0${i}.json`), 'utf8'));
    const secretKey = Buffer.from(j.signing.secretKey, 'base64');
    secrets[`signingSecret${i}`] = secretKey;
    secrets[`signingSeed${i}`] = secretKey.subarray(0, 32);
    if (j.exchange?.secretKey) secrets[`exchangeSecret${i}`] = Buffer.from(j.exchange.secretKey, 'base64');
    const keyPair = nacl.sign.keyPair.fromSecretKey(secretKey);
    logOnly[`keyHash${i}`] = j.keyHash;
    logOnly[`publicKey${i}`] = Buffer.from(keyPair.publicKey);
    return { keyHash: j.keyHash, keyPair };
  });
  const turnSecret1 = rand(32);
  const turnSecret2 = rand(32);
  secrets.turnSecret1 = turnSecret1;
  secrets.turnSecret2 = turnSecret2;
  // A database password in the conninfo (the throwaway cluster trusts local users, so any works).
  secrets.pgPassword = 'pgpw-' + rand(12);
  const secretFile = path.join(tmp, 'turn.secret');
  fs.writeFileSync(secretFile, turnSecret1 + '\n', { mode: 0o600 });

  const profile = path.join(tmp, 'relay.yaml');
  fs.writeFileSync(profile, `
profile: privacy-audit-relay
state_dir: ${tmp}/state
store: blobs
log: {level: trace, format: json}   # trace: everything debug logs and more
drain: {grace: 200ms}
plugins:
  - name: blobs
    plugin: store-pg
    config: {conninfo: "${PG} password=${secrets.pgPassword}", max_record: 64K, history_limit: 0}
  - name: relay
    plugin: relay
    config: {allowlist: ${tmp}/ids/allowlist.json, mode: secure, post_rate: 0, proof_window: 120s, allowlist_poll: 0s}
  - name: calls
    plugin: signaling
    config:
      max_members: 8
      max_signal: 16K
      turn_urls: ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"]
      turn_secret_file: ${secretFile}
      turn_ttl: 10m
      secret_poll: 1s
  - name: web
    plugin: transport-ws
    config:
      host: 127.0.0.1
      port: ${port}
      protocol: relay
      relay: {auth_timeout: 3s}
      threads: 2
      max_http_body: 80K
      permissions_policy: "camera=(self), microphone=(self), display-capture=(self)"
`);
  const logFile = path.join(tmp, 'parleyd.log');
  let d;
  const open = [];
  try {
    d = await startParleyd({ profile, port, logFile });
    const sentAt = Date.now();
    const markers = [];
    const postBlob = async (from, to) => {
      const body = crypto.randomBytes(65536);
      const marker = 'blob-plain-' + rand(8);
      Buffer.from(marker).copy(body, 100); // readable text inside the (normally sealed) blob
      markers.push(marker);
      const r = await api(port, 'POST', `/api/blobs?recipientKeyHash=${to.keyHash}`, from.keyPair, secrets, body);
      assert.equal(r.status, 201, r.text);
      logOnly[`blobId${markers.length}`] = JSON.parse(r.text).id;
    };
    const turn = async (ask, what) => {
      const c = await ask();
      assert.ok(Array.isArray(c.urls) && c.urls.length === 2, JSON.stringify(c));
      for (const lh of Object.values(logOnly)) assert.ok(typeof lh !== 'string' || !c.username.includes(lh), 'TURN username embeds an identity');
      secrets[`turnCredential${Object.keys(secrets).length}`] = c.credential;
      secrets[`turnUserId${Object.keys(secrets).length}`] = c.username.split(':').slice(1).join(':');
      return c;
    };

    // ---- /ws: alice and bob ----
    const a = await wsAuthed(port, alice, secrets); open.push(a);
    const b = await wsAuthed(port, bob, secrets); open.push(b);
    a.send({ type: 'join_blob' });
    b.send({ type: 'join_blob' });
    await sleep(200);
    await postBlob(bob, alice);
    await a.event('refresh');
    await postBlob(alice, bob);
    await b.event('refresh');
    // alice lists and deletes her blob.
    const list = await api(port, 'GET', `/api/blobs?recipientKeyHash=${alice.keyHash}`, alice.keyPair, secrets);
    assert.equal(list.status, 200, list.text);
    const [got] = JSON.parse(list.text);
    assert.ok(Buffer.from(got.payload, 'base64').includes(markers[0]));
    assert.equal((await api(port, 'DELETE', `/api/blobs/${got.id}`, alice.keyPair, secrets)).status, 204);

    // Refusals: a stranger's (unlisted) key, and an allowlisted key signing the wrong nonce.
    const stranger = nacl.sign.keyPair();
    secrets.strangerSecret = Buffer.from(stranger.secretKey);
    for (const [kp, bad] of [[stranger, false], [alice.keyPair, true]]) {
      const c = wsClient(port); open.push(c);
      const { nonce } = await c.event('challenge');
      secrets[`refusedNonce${Object.keys(secrets).length}`] = nonce;
      const signed = bad ? b64(crypto.randomBytes(32)) : nonce;
      const sig = nacl.sign.detached(Buffer.from(AUTH_PREFIX + signed), kp.secretKey);
      secrets[`refusedSig${Object.keys(secrets).length}`] = Buffer.from(sig);
      c.send({ type: 'auth', publicKey: b64(kp.publicKey), signature: b64(sig) });
      assert.equal((await c.event('error')).error, 'authentication failed');
      for (let i = 0; i < 50 && c.closed === null; i++) await sleep(100);
      assert.equal(c.closed, 1008, 'a refused client is closed with 1008');
    }

    // A call between alice and bob: offer, answer, trickled candidates, an e2e payload.
    const room = derivedRoom(alice.keyHash, bob.keyHash);
    a.emit('join_room', room, alice.keyHash, [alice.keyHash, bob.keyHash]);
    assert.deepEqual((await a.event('members')).args[0], []);
    b.emit('join_room', room, bob.keyHash, [alice.keyHash, bob.keyHash]);
    const [{ id: aliceId }] = (await b.event('members')).args[0];
    const { id: bobId } = (await a.event('peer_joined')).args[0];
    const offer = { type: 'offer', sdp: makeSdp('offer', secrets, 'wsOffer') };
    b.emit('signal', { to: aliceId, type: 'offer', sdp: offer });
    assert.deepEqual((await a.event('signal')).args[0], { from: bobId, type: 'offer', sdp: offer });
    const answer = { type: 'answer', sdp: makeSdp('answer', secrets, 'wsAnswer') };
    a.emit('signal', { to: bobId, type: 'answer', sdp: answer });
    assert.equal((await b.event('signal')).args[0].sdp.sdp, answer.sdp);
    for (const [from, to, toId, tag] of [[a, b, bobId, 'wsCandA'], [b, a, aliceId, 'wsCandB']]) {
      from.emit('signal', { to: toId, candidate: makeCandidate(secrets, tag) });
      assert.equal((await to.event('signal')).args[0].candidate.candidate, secrets[`${tag}Candidate`]);
    }
    secrets.wsE2e = crypto.randomBytes(48); // an end-to-end encrypted signal, opaque to parley
    a.emit('signal', { to: bobId, e2e: b64(secrets.wsE2e) });
    assert.equal((await b.event('signal')).args[0].e2e, b64(secrets.wsE2e));
    a.emit('call_state', room, { muted: true, deafened: false, cameraOn: true, screenSharing: false });
    await b.event('peer_call_state');
    a.emit('turn_credentials');
    const ca = await turn(async () => (await a.event('turn_credentials')).args[0]);
    assert.ok(turnValid(turnSecret1, ca), 'TURN credential made with the configured secret');
    // Error paths carry content too: a malformed frame, an unknown type, an SDP for someone
    // outside the call, an oversized signal.
    secrets.wsMalformed = 'malformed-' + rand(12);
    a.ws.send(`{"type":"signal","args":[{"to":"x","sdp":"${secrets.wsMalformed}"`);
    assert.equal((await a.event('error')).error, 'invalid frame');
    secrets.wsUnknown = 'unknown-' + rand(12);
    a.send({ type: 'x_probe', note: secrets.wsUnknown });
    await a.event('error');
    a.emit('signal', { to: 'not-a-member', type: 'offer', sdp: { type: 'offer', sdp: makeSdp('offer', secrets, 'wsStray') } });
    assert.equal((await a.event('error')).error, 'recipient is not in your call');
    secrets.wsBig = crypto.randomBytes(20 * 1024);
    a.emit('signal', { to: bobId, e2e: b64(secrets.wsBig) });
    assert.equal((await a.event('error')).error, 'payload too large');
    b.emit('leave_room', room);
    await a.event('peer_left');
    // A blob POST with a signature by the wrong key.
    const forged = await api(port, 'POST', `/api/blobs?recipientKeyHash=${bob.keyHash}`, { publicKey: alice.keyPair.publicKey, secretKey: stranger.secretKey }, secrets, crypto.randomBytes(1024));
    assert.equal(forged.status, 401, forged.text);

    // ---- Socket.IO: carol and dave ----
    const url = `http://127.0.0.1:${port}`;
    const c = await sioAuthed(url, carol, secrets); open.push(c);
    const dv = await sioAuthed(url, dave, secrets); open.push(dv);
    c.emit('join_blob', carol.keyHash);
    await sleep(200);
    const refresh = c.next('refresh');
    await postBlob(dave, carol);
    await refresh;
    const sroom = derivedRoom(carol.keyHash, dave.keyHash);
    const cm = c.next('members');
    c.emit('join_room', sroom, carol.keyHash, [carol.keyHash, dave.keyHash]);
    assert.deepEqual((await cm)[0], []);
    const joined = c.next('peer_joined');
    const dm = dv.next('members');
    dv.emit('join_room', sroom, dave.keyHash, [carol.keyHash, dave.keyHash]);
    assert.equal((await dm)[0][0].id, c.id);
    assert.equal((await joined)[0].id, dv.id);
    const soffer = { type: 'offer', sdp: makeSdp('offer', secrets, 'sioOffer') };
    let sig = c.next('signal');
    dv.emit('signal', { to: c.id, type: 'offer', sdp: soffer });
    assert.deepEqual((await sig)[0], { from: dv.id, type: 'offer', sdp: soffer });
    const sanswer = { type: 'answer', sdp: makeSdp('answer', secrets, 'sioAnswer') };
    sig = dv.next('signal');
    c.emit('signal', { to: dv.id, type: 'answer', sdp: sanswer });
    assert.equal((await sig)[0].sdp.sdp, sanswer.sdp);
    sig = c.next('signal');
    dv.emit('signal', { to: c.id, candidate: makeCandidate(secrets, 'sioCand') });
    assert.equal((await sig)[0].candidate.candidate, secrets.sioCandCandidate);
    const st = dv.next('peer_call_state');
    c.emit('call_state', sroom, { muted: false, deafened: true });
    await st;
    let tc = c.next('turn_credentials');
    c.emit('turn_credentials');
    const cc = await turn(async () => (await tc)[0]);
    assert.ok(turnValid(turnSecret1, cc));
    let err = c.next('error');
    c.emit('signal', { to: 'not-a-member', type: 'offer', sdp: { type: 'offer', sdp: makeSdp('offer', secrets, 'sioStray') } });
    assert.equal((await err)[0].error, 'recipient is not in your call');
    secrets.sioBig = crypto.randomBytes(20 * 1024);
    err = c.next('error');
    c.emit('signal', { to: dv.id, e2e: b64(secrets.sioBig) });
    assert.equal((await err)[0].error, 'payload too large');
    // A refused Socket.IO auth (bad signature).
    const x = sioClient(url); open.push(x);
    const [{ nonce: xn }] = await x.next('challenge');
    secrets.sioRefusedNonce = xn;
    const xsig = nacl.sign.detached(Buffer.from(AUTH_PREFIX + xn), dave.keyPair.secretKey);
    secrets.sioRefusedSig = Buffer.from(xsig);
    const xerr = x.next('error');
    x.emit('auth', { publicKey: b64(carol.keyPair.publicKey), signature: b64(xsig) });
    assert.equal((await xerr)[0].error, 'authentication failed');

    // ---- the TURN secret rotates (file rewritten, picked up by secret_poll) ----
    fs.writeFileSync(secretFile, turnSecret2 + '\n');
    let rotated = null;
    for (let i = 0; i < 40 && !rotated; i++) {
      await sleep(250);
      tc = dv.next('turn_credentials');
      dv.emit('turn_credentials');
      const cr = await turn(async () => (await tc)[0]);
      if (turnValid(turnSecret2, cr)) rotated = cr;
    }
    assert.ok(rotated, 'the rotated TURN secret was not picked up');

    for (const s of open) (s.ws ? s.ws.close() : s.close());
    await sleep(300);

    // ---- compat mode (Relay's unmodified clients: claimed, unproven key hashes) ----
    // Applied by a reload through the control socket, whose commands are logged at debug level
    // (which shows the level was on); the relay and signaling plugins re-read their config.
    const ctl = (cmd) => execFileSync(CLI, ['ctl', '--profile', profile, cmd], { stdio: 'pipe' }).toString();
    fs.writeFileSync(profile, fs.readFileSync(profile, 'utf8').replace('mode: secure', 'mode: compat'));
    ctl('reload');
    const e = wsClient(port); open.push(e);
    await e.event('challenge');
    e.send({ type: 'join_blob', keyHash: carol.keyHash });
    const g = sioClient(url); open.push(g);
    await g.next('challenge');
    await sleep(200);
    await postBlob(alice, carol);
    await e.event('refresh');
    const croom = derivedRoom(carol.keyHash, dave.keyHash);
    e.emit('join_room', croom, carol.keyHash, [carol.keyHash, dave.keyHash]);
    assert.deepEqual((await e.event('members')).args[0], []);
    const gm = g.next('members');
    g.emit('join_room', croom, dave.keyHash, [carol.keyHash, dave.keyHash]);
    const [{ id: carolId }] = (await gm)[0];
    const { id: daveId } = (await e.event('peer_joined')).args[0];
    const coffer = { type: 'offer', sdp: makeSdp('offer', secrets, 'compatOffer') };
    sig = g.next('signal');
    e.emit('signal', { to: daveId, type: 'offer', sdp: coffer });
    assert.deepEqual((await sig)[0], { from: carolId, type: 'offer', sdp: coffer });
    g.emit('signal', { to: carolId, candidate: makeCandidate(secrets, 'compatCand') });
    assert.equal((await e.event('signal')).args[0].candidate.candidate, secrets.compatCandCandidate);
    tc = g.next('turn_credentials');
    g.emit('turn_credentials');
    assert.ok(turnValid(turnSecret2, await turn(async () => (await tc)[0])));
    ctl('status');
    for (const s of [e, g]) (s.ws ? s.ws.close() : s.close());
    await sleep(300);

    // ---- PostgreSQL ----
    const psql = (q) => execFileSync(pgBin('psql'), ['-d', PG, '-At', '-c', q]).toString().trim().split('\n').filter(Boolean);
    assert.deepEqual(psql("SELECT column_name FROM information_schema.columns WHERE table_name = 'blobs' ORDER BY 1"),
      ['data', 'expires_at', 'id', 'recipient'], 'the blobs table gained a column (a send time?)');
    const expiries = psql('SELECT extract(epoch from expires_at) FROM blobs').map(Number);
    assert.equal(expiries.length, 3, 'three blobs left (one was deleted)');
    const midnight = Math.floor(sentAt / 86400_000) * 86400;
    for (const e of expiries) {
      assert.equal(e % 60, 0, `blob expiry ${e} has sub-minute precision`);
      assert.ok(e >= midnight + 72 * 3600 && e <= midnight + 96 * 3600, `blob expiry ${e} outside 72..96 h of the send day`);
    }
    const dump = execFileSync(pgBin('pg_dump'), ['-d', PG, '--data-only'], { maxBuffer: 256 << 20 }).toString();
    await d.stop();
    const logs = fs.readFileSync(logFile, 'utf8');
    assert.ok(logs.includes('"level":"debug"'), 'debug logging was on');

    const leaks = [];
    const addrs = [...ipForms(CLIENT_IP), CAND_IP4, CAND_IP6, '127.0.0.1', '::ffff:127.0.0.1', '7f000001', '0100007f', '2130706433'];
    const scan = (where, text, set, { blobs = false } = {}) => {
      const lower = text.toLowerCase();
      for (const [name, s] of Object.entries(set))
        for (const f of forms(s)) if (lower.includes(f.toLowerCase())) { leaks.push(`${name} in ${where} as ${f.slice(0, 24)}…`); break; }
      // Short address forms (8 hex / 10 digits) occur by chance in 128 KiB of random blob
      // bytes dumped as hex: look for addresses outside long bytea literals.
      const noBytea = lower.replace(/\\x[0-9a-f]{200,}/g, '\\x…');
      for (const ip of addrs) if (noBytea.includes(ip.toLowerCase())) leaks.push(`address in ${where} as ${ip}`);
      // ::1 only as a whole token (hex digits would match inside other text).
      if (/(^|[^0-9a-f:])::1([^0-9a-f:]|$)/.test(noBytea)) leaks.push(`address in ${where} as ::1`);
      // Any SDP or ICE syntax at all, whatever session it came from.
      const sdp = noBytea.match(/a=(ice-ufrag|ice-pwd|fingerprint|candidate):|in ip[46] |typ (host|srflx|prflx|relay)\b/);
      if (sdp) leaks.push(`SDP syntax in ${where}: ${sdp[0]}`);
      // The blobs' bytes are stored (sealed by real clients) but never logged.
      if (!blobs) for (const m of markers) if (text.includes(m) || lower.includes(Buffer.from(m).toString('hex'))) leaks.push(`blob content in ${where}`);
    };
    // Negative control: the scanner finds each kind of thing it looks for.
    const planted = [
      b64(secrets.signingSecret1), secrets.turnSecret1, secrets.wsOfferIcePwd,
      secrets.sioCandCandidate.split(' ').slice(2).join(' '), // a candidate without its prefix
      Object.entries(secrets).find(([k]) => k.startsWith('authSig'))[1].toString('base64url'),
      `"peer":"::ffff:${CLIENT_IP}"`, `conn from ${CLIENT_IP}:51234`, `[::1]:8080`, logOnly.keyHash2,
    ].join(' ');
    scan('self-test', planted, { ...secrets, ...logOnly });
    for (const want of ['signingSecret1', 'turnSecret1', 'wsOfferIcePwd', 'sioCandCandUfrag', 'authSig', 'SDP syntax', 'address in self-test as ::1', 'keyHash2', `as ${CLIENT_IP}`, 'as ::ffff:'])
      assert.ok(leaks.some((l) => l.includes(want)), `scanner self-test missed ${want}: ${leaks.join('; ')}`);
    leaks.length = 0;

    // Listener lines name the listen address (127.0.0.1), not a client's.
    const logLines = logs.split('\n').filter((l) => !/"msg":"listening on /.test(l));
    scan('parleyd log', logLines.join('\n'), { ...secrets, ...logOnly });
    scan('pg_dump', dump, secrets, { blobs: true });
    // PostgreSQL's own log at its default settings: an error's DETAIL line quotes key values
    // ("Key (col)=(value)"), and SQL built with literals would show in a STATEMENT line.
    const pgLog = fs.readFileSync(path.join(process.env.PARLEY_TEST_PG_DIR, 'server.log'), 'utf8');
    assert.match(pgLog, /database system is ready to accept connections/, 'the PostgreSQL server log was found');
    scan('PostgreSQL server log', pgLog, { ...secrets, ...logOnly });
    // Whatever parleyd keeps in its state directory (today only the port file).
    const stateFiles = fs.readdirSync(path.join(tmp, 'state'), { recursive: true })
      .map((f) => path.join(tmp, 'state', f)).filter((f) => fs.statSync(f).isFile());
    for (const f of stateFiles) scan(`state file ${path.basename(f)}`, fs.readFileSync(f, 'latin1'), { ...secrets, ...logOnly });
    assert.deepEqual(leaks, [], `leaks:\n${leaks.join('\n')}`);
  } finally {
    for (const s of open) try { s.ws ? s.ws.terminate() : s.close(); } catch { /* closed */ }
    await d?.stop();
    if (!process.env.PRIVACY_AUDIT_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
    else console.log(`kept ${tmp}`);
  }
});
