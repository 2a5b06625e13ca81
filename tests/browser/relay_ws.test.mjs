// Relay WebSocket dialect (plugins/dialects/relay.cpp) against a real parleyd: challenge-response
// admission with Ed25519 keys from `parley identities generate`, join_blob/refresh on a blob
// POST, command forwarding, auth timeout, and allowlist changes applied after SIGHUP.
// Clients are node's `ws` + tweetnacl; no browser.
//
// Env: PARLEYD, PARLEY_CLI, PARLEY_RELAY_WS_PROFILE (tests/browser/profiles/relay-ws.yaml.in).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import WebSocket from 'ws';
import { freePort, startParleyd, writeProfile, BROWSER_TESTS_DIR } from './lib/harness.mjs';
import { generateIdentities, relayMember, postSignedBlob } from './lib/socketio.mjs';

const PROFILE = process.env.PARLEY_RELAY_WS_PROFILE
  || path.join(BROWSER_TESTS_DIR, 'profiles', 'relay-ws.yaml.in');
const CLI = process.env.PARLEY_CLI;
const AUTH_PREFIX = 'parley-relay-auth-v1\n';
const AUTH_FAILED = '{"type":"error","error":"authentication failed"}';
const AUTH_TIMEOUT_MS = 2000;

const b64 = (u8) => Buffer.from(u8).toString('base64');
const sha256hex = (data) => crypto.createHash('sha256').update(data).digest('hex');
// Independent of parley: hex(SHA-256(base64(raw Ed25519 pk))).
const keyHashOf = (pk) => sha256hex(b64(pk));

let tmp;
let d;
let members;
let allowlistPath;

// A client that records every text frame and the close event.
function connect() {
  const ws = new WebSocket(`ws://127.0.0.1:${d.port}/ws`);
  const c = { ws, frames: [], raw: [], closed: null, waiters: [] };
  const wake = () => { for (const w of c.waiters.splice(0)) w(); };
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const text = data.toString('utf8');
    c.raw.push(text);
    c.frames.push(JSON.parse(text));
    wake();
  });
  ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString() }; wake(); });
  ws.on('error', () => {});
  return c;
}

// Resolves when pred() is true; rejects after ms.
async function until(c, pred, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = pred();
    if (v) return v;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(c.raw)} closed: ${JSON.stringify(c.closed)}`);
    await new Promise((r) => { c.waiters.push(r); setTimeout(r, Math.min(left, 100)); });
  }
}

const frame = (c, type, from = 0) => until(c, () => c.frames.slice(from).find((f) => f.type === type), 5000, type);
const send = (c, obj) => c.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));

async function challenge(c) {
  const ch = await frame(c, 'challenge');
  assert.equal(Buffer.from(ch.nonce, 'base64').length, 32);
  return ch.nonce;
}

function authFrame(keyPair, nonce) {
  const sig = nacl.sign.detached(Buffer.from(AUTH_PREFIX + nonce, 'utf8'), keyPair.secretKey);
  return { type: 'auth', publicKey: b64(keyPair.publicKey), signature: b64(sig) };
}

async function authed(member) {
  const c = connect();
  const nonce = await challenge(c);
  send(c, authFrame(member.keyPair, nonce));
  const a = await frame(c, 'authed');
  assert.equal(a.keyHash, member.keyHash);
  return c;
}

// The refusal must be the exact same frame then a 1008 close, whatever failed.
async function assertRefused(c) {
  await until(c, () => c.closed, 5000, 'close');
  assert.deepEqual(c.raw.filter((t) => !t.includes('"challenge"')), [AUTH_FAILED]);
  assert.equal(c.closed.code, 1008);
  assert.ok(!c.frames.some((f) => f.type === 'authed'));
}

// Signed POST of one blob (the relay plugin's secure mode).
const postBlob = async (sender, recipientHash) => (await postSignedBlob(d.url, sender, recipientHash)).json();

// A frame the server always answers (unknown type): once its answer is back, every frame sent
// before it on this connection has been handled.
async function sync(c) {
  const from = c.frames.length;
  send(c, { type: 'x_sync_probe' });
  await until(c, () => c.frames.slice(from).some((f) => f.type === 'error'), 5000, 'sync');
}

before(async () => {
  assert.ok(CLI, 'PARLEY_CLI is not set (path to the parley tool)');
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-relay-ws-'));
  members = generateIdentities(tmp, { circle: 'ws' }).map(relayMember);
  allowlistPath = path.join(tmp, 'allowlist.json');
  fs.copyFileSync(path.join(tmp, 'ids', 'allowlist.json'), allowlistPath);
  const port = await freePort();
  const stateDir = await fsp.mkdtemp(path.join(tmp, 'state-'));
  const profile = await writeProfile(PROFILE, {
    port, stateDir, dir: stateDir,
    vars: { ALLOWLIST: allowlistPath, AUTH_TIMEOUT: `${AUTH_TIMEOUT_MS}ms` },
  });
  d = await startParleyd({ profile, port });
});

after(async () => {
  const exit = await d?.stop();
  if (d) {
    // Privacy: no key hash or nonce ever reaches the log.
    const logs = d.logs();
    for (const m of members) assert.ok(!logs.includes(m.keyHash), 'a key hash was logged');
    assert.equal(exit.code, 0, 'parleyd did not exit cleanly');
  }
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

test('challenge then auth with an allowlisted key: authed with its key hash', async () => {
  const [alice] = members;
  const c = connect();
  const nonce = await challenge(c);
  send(c, authFrame(alice.keyPair, nonce));
  const a = await frame(c, 'authed');
  assert.equal(a.keyHash, keyHashOf(alice.keyPair.publicKey));
  assert.deepEqual(Object.keys(a).sort(), ['keyHash', 'type']);
  // Every connection gets a fresh nonce.
  const c2 = connect();
  assert.notEqual(await challenge(c2), nonce);
  c.ws.close();
  c2.ws.close();
});

test('unknown key, bad signature, replayed answer, malformed auth: same refusal, close 1008', async () => {
  const [alice] = members;
  // A key that is not on the allowlist, correctly signed.
  const stranger = connect();
  send(stranger, authFrame(nacl.sign.keyPair(), await challenge(stranger)));
  await assertRefused(stranger);

  // An allowlisted key signing the wrong nonce.
  const badSig = connect();
  await challenge(badSig);
  send(badSig, authFrame(alice.keyPair, crypto.randomBytes(32).toString('base64')));
  await assertRefused(badSig);

  // An answer captured from another connection is worthless on this one.
  const first = connect();
  const answer = authFrame(alice.keyPair, await challenge(first));
  send(first, answer);
  await frame(first, 'authed');
  const replay = connect();
  await challenge(replay);
  send(replay, answer);
  await assertRefused(replay);
  first.ws.close();

  // Signature over the nonce with another key than the one claimed.
  const swapped = connect();
  const n = await challenge(swapped);
  const other = authFrame(members[1].keyPair, n);
  send(swapped, { ...other, publicKey: b64(alice.keyPair.publicKey) });
  await assertRefused(swapped);

  for (const junk of ['not json', '{"type":"auth"}', '{"type":"auth","publicKey":"AAAA","signature":"AAAA"}', '{"type":"auth","publicKey":1,"signature":2}']) {
    const c = connect();
    await challenge(c);
    send(c, junk);
    await assertRefused(c);
  }
});

test('any frame before auth is refused the same way', async () => {
  for (const early of [{ type: 'join_blob' }, { type: 'join_room', roomId: 'r' }, { type: 'x' }]) {
    const c = connect();
    await challenge(c);
    send(c, early);
    await assertRefused(c);
  }
  // Binary frames too.
  const c = connect();
  await challenge(c);
  c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  await assertRefused(c);
});

test('no answer within auth_timeout: refused and closed 1008', async () => {
  const c = connect();
  await challenge(c);
  const t0 = Date.now();
  await until(c, () => c.closed, AUTH_TIMEOUT_MS + 4000, 'timeout close');
  const waited = Date.now() - t0;
  assert.ok(waited >= AUTH_TIMEOUT_MS - 200, `closed after ${waited} ms, before the timeout`);
  await assertRefused(c);
  // An authenticated client is not cut off by the timer.
  const ok = await authed(members[0]);
  await new Promise((r) => setTimeout(r, AUTH_TIMEOUT_MS + 300));
  assert.equal(ok.closed, null);
  await sync(ok);
  ok.ws.close();
});

test('unknown frame types after auth: {"type":"error","error":"unknown type"}, connection stays', async () => {
  const c = await authed(members[0]);
  const from = c.frames.length;
  send(c, { type: 'no_such_command', x: [1, { y: 2 }] });
  const err = await frame(c, 'error', from);
  assert.deepEqual(err, { type: 'error', error: 'unknown type' });
  send(c, { type: 'bad type!' });
  await until(c, () => c.frames.slice(from + 1).some((f) => f.type === 'error'), 5000, 'invalid frame error');
  assert.equal(c.closed, null);
  // Unknown types are not held against the client; malformed frames are: 10 close it (1008).
  for (let i = 0; i < 12; i++) send(c, { type: `unknown_${i}` });
  await sync(c);
  assert.equal(c.closed, null);
  for (let i = 0; i < 10; i++) send(c, i % 2 ? 'not json' : { type: 'auth', publicKey: 'x', signature: 'y' });
  await until(c, () => c.closed, 5000, 'close after bad frames');
  assert.equal(c.closed.code, 1008);
});

test('join_blob then a POST for that key: refresh arrives; other boxes are not joinable', async () => {
  const [alice, bob, carol] = members;
  const a = await authed(alice);
  const b = await authed(bob);
  send(a, { type: 'join_blob' });
  // Relay's client names the key hash; naming someone else's is refused.
  const fromB = b.frames.length;
  send(b, { type: 'join_blob', keyHash: alice.keyHash });
  const err = await frame(b, 'error', fromB);
  assert.deepEqual(err, { type: 'error', error: 'not allowed' });
  send(b, { type: 'join_blob', keyHash: bob.keyHash.toUpperCase() }); // own box, any case
  await sync(a);
  await sync(b);

  const fromA = a.frames.length;
  const fromB2 = b.frames.length;
  await postBlob(carol, alice.keyHash);
  assert.deepEqual(await frame(a, 'refresh', fromA), { type: 'refresh' });
  await postBlob(carol, bob.keyHash);
  await frame(b, 'refresh', fromB2);
  // Bob got exactly one refresh (his own), alice exactly one (hers).
  await sync(a);
  await sync(b);
  assert.equal(a.frames.slice(fromA).filter((f) => f.type === 'refresh').length, 1);
  assert.equal(b.frames.slice(fromB2).filter((f) => f.type === 'refresh').length, 1);

  // leave_blob stops notifications.
  send(a, { type: 'leave_blob' });
  await sync(a);
  const fromA2 = a.frames.length;
  await postBlob(carol, alice.keyHash);
  await new Promise((r) => setTimeout(r, 300));
  await sync(a);
  assert.ok(!a.frames.slice(fromA2).some((f) => f.type === 'refresh'));
  a.ws.close();
  b.ws.close();
});

test('allowlist edited then SIGHUP: a removed key is refused, the others still get in', async () => {
  const [alice, , carol] = members;
  const keep = members.filter((m) => m !== carol).map((m) => m.keyHash);
  fs.writeFileSync(allowlistPath, JSON.stringify({ format: 'parley-relay-allowlist', version: 1, circle: 'ws', keyHashes: keep }));
  process.kill(d.pid, 'SIGHUP');
  const deadline = Date.now() + 5000;
  while (!/SIGHUP/.test(d.logs()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const c = connect();
  send(c, authFrame(carol.keyPair, await challenge(c)));
  await assertRefused(c);
  (await authed(alice)).ws.close();

  // Put carol back: she gets in again.
  fs.copyFileSync(path.join(tmp, 'ids', 'allowlist.json'), allowlistPath);
  process.kill(d.pid, 'SIGHUP');
  (await authed(carol)).ws.close();
});
