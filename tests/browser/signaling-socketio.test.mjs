// Relay's Socket.IO dialect (/socket.io/, Engine.IO v4 over WebSocket) against a real parleyd,
// driven by the npm socket.io-client Relay's app uses: connect, prove the Ed25519 identity
// (challenge/auth), join_blob then `refresh` on a signed blob POST, join_room/signal between two
// clients with Relay's payloads, peer_left when a member disconnects, refusals.
//
// Env: PARLEYD, PARLEY_CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { BROWSER_TESTS_DIR } from './lib/harness.mjs';
import {
  generateIdentities, relayMember, postSignedBlob, startSignalingParleyd, openSocket, nextEvent as next,
} from './lib/socketio.mjs';

const PROFILE = path.join(BROWSER_TESTS_DIR, 'profiles', 'signaling.yaml.in');
const b64 = (u8) => Buffer.from(u8).toString('base64');

let tmp; let d; let members;
const sockets = [];

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-socketio-'));
  members = generateIdentities(tmp, { circle: 'sio' }).map(relayMember);
  d = await startSignalingParleyd(PROFILE, tmp, { member1: members[0].keyHash, member2: members[1].keyHash });
});

after(async () => {
  for (const s of sockets) s.close();
  await d?.stop();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

// A socket.io-client socket that records every event.
const open = () => openSocket(d.url, { sockets });

async function authed(m, { unpadded = false } = {}) {
  const s = open();
  const [ch] = await next(s, 'challenge');
  assert.equal(Buffer.from(ch.nonce, 'base64').length, 32);
  assert.ok(s.connected && typeof s.id === 'string');
  const sig = nacl.sign.detached(Buffer.from(`parley-relay-auth-v1\n${ch.nonce}`, 'utf8'), m.keyPair.secretKey);
  const got = next(s, 'authed');
  // Like /ws, padded or unpadded base64 (clients differ).
  const enc = (x) => (unpadded ? b64(x).replace(/=+$/, '') : b64(x));
  s.emit('auth', { publicKey: enc(m.keyPair.publicKey), signature: enc(sig) });
  const [a] = await got;
  assert.equal(a.keyHash, m.keyHash);
  return s;
}

test('connect, prove identity, join_blob: a blob POST for us emits refresh', async () => {
  const [m1, m2] = members;
  const s = await authed(m1);
  s.emit('join_blob', m1.keyHash);
  await new Promise((r) => setTimeout(r, 200));
  const refresh = next(s, 'refresh');
  await postSignedBlob(d.url, m2, m1.keyHash);
  assert.deepEqual(await refresh, []);
  // Another member's box cannot be watched.
  const err = next(s, 'error');
  s.emit('join_blob', m2.keyHash);
  assert.equal((await err)[0].error, 'not allowed');
  s.close();
});

test('auth accepts unpadded base64 as /ws does', async () => {
  const s = await authed(members[0], { unpadded: true });
  s.close();
});

test('join_room and signal between two socket.io clients, with Relay payloads', async () => {
  const [m1, m2, m3] = members;
  const a = await authed(m1);
  const b = await authed(m2);
  const allowed = [m1.keyHash, m2.keyHash];
  const am = next(a, 'members');
  a.emit('join_room', 'call-test', m1.keyHash, allowed);
  assert.deepEqual((await am)[0], []);
  const joined = next(a, 'peer_joined');
  const bm = next(b, 'members');
  b.emit('join_room', 'call-test', m2.keyHash, allowed);
  assert.deepEqual((await bm)[0], [{ id: a.id, keyHash: m1.keyHash }]);
  assert.deepEqual((await joined)[0], { id: b.id, keyHash: m2.keyHash });

  // Relay's offer shape {to, type, sdp} arrives as {from, type, sdp}.
  const sdp = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };
  const sig = next(b, 'signal');
  a.emit('signal', { to: b.id, type: 'offer', sdp });
  assert.deepEqual((await sig)[0], { from: a.id, type: 'offer', sdp });
  const cand = next(a, 'signal');
  b.emit('signal', { to: a.id, candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0' } });
  assert.deepEqual((await cand)[0].candidate.sdpMid, '0');
  const st = next(b, 'peer_call_state');
  a.emit('call_state', 'call-test', { muted: true, deafened: false });
  assert.deepEqual((await st)[0], { id: a.id, muted: true, deafened: false });

  // A member outside the room's ACL: room_join_error, and its signals reach nobody.
  const c = await authed(m3);
  const refused = next(c, 'room_join_error');
  c.emit('join_room', 'call-test', m3.keyHash, [m1.keyHash, m3.keyHash]);
  assert.deepEqual((await refused)[0], { message: 'Not allowed to join this call.' });
  const cerr = next(c, 'error');
  c.emit('signal', { to: a.id, type: 'offer', sdp });
  assert.equal((await cerr)[0].error, 'recipient is not in your call');

  // A member's socket closing tells the others (relay.closed -> peer_left).
  const bId = b.id; // socket.io-client forgets it on disconnect
  const left = next(a, 'peer_left');
  b.close();
  assert.deepEqual(await left, [bId]);
  const last = next(a, 'last_to_leave');
  a.emit('leave_room', 'call-test');
  assert.deepEqual(await last, []);
  assert.ok(!a.events.some((e) => e.event === 'signal' && e.args[0].from === c.id));
  a.close();
  c.close();
});

test('refusals: bad signature, events before auth', async () => {
  const [m1, m2] = members;
  const s = open();
  const [ch] = await next(s, 'challenge');
  const sig = nacl.sign.detached(Buffer.from(`parley-relay-auth-v1\n${ch.nonce}`, 'utf8'), m2.keyPair.secretKey);
  const err = next(s, 'error');
  const gone = next(s, 'disconnect');
  s.emit('auth', { publicKey: b64(m1.keyPair.publicKey), signature: b64(sig) });
  assert.deepEqual((await err)[0], { error: 'authentication failed' });
  await gone;

  const t = open();
  await next(t, 'challenge');
  const err2 = next(t, 'error');
  t.emit('join_room', 'call-test', m1.keyHash, [m1.keyHash]);
  assert.deepEqual((await err2)[0], { error: 'authentication failed' });
  assert.ok(!t.events.some((e) => e.event === 'members'));

  // No answer to the challenge within relay.auth_timeout (3 s here): refused and disconnected.
  const u = open();
  await next(u, 'challenge');
  const started = Date.now();
  const err3 = next(u, 'error', 8000);
  const gone3 = next(u, 'disconnect', 8000);
  assert.deepEqual((await err3)[0], { error: 'authentication failed' });
  await gone3;
  assert.ok(Date.now() - started >= 2000, 'not before the timeout');
});

test('the server pings (Engine.IO v4): an authenticated socket outlives pingInterval + pingTimeout', { skip: process.env.PARLEY_SLOW_TESTS !== '1' }, async () => {
  const s = await authed(members[0]);
  let pings = 0;
  s.io.on('ping', () => { pings++; });
  await new Promise((r) => setTimeout(r, 50000));
  assert.ok(pings >= 1 && s.connected, `pings ${pings}, connected ${s.connected}`);
  s.close();
});
