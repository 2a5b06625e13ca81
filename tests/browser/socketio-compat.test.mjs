// Relay's unmodified app against parleyd with the relay plugin in `mode: compat`: npm
// socket.io-client with Relay's own options and events, no challenge/auth (Relay's socket.js has
// none): join_blob(keyHash) then `refresh` on an unauthenticated blob POST; join_room/signal
// between two clients; key hashes not on the allowlist refused; no admission deadline. Also the
// /ws dialect's compat form ({"type":"join_blob","keyHash":H}).
//
// Event names and payloads follow seika5/relay: relay-web/src/lib/useMessages.ts (socket
// options, join_blob/leave_blob/refresh), relay-web/src/lib/callRoom.ts and
// relay-server/src/socket.js (join_room(roomId, keyHash, allowedKeyHashes), signal {to, ...},
// call_state(roomId, {muted, deafened}), leave_room(roomId)).
//
// Env: PARLEYD, PARLEY_CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { BROWSER_TESTS_DIR } from './lib/harness.mjs';
import {
  generateIdentities, startSignalingParleyd, openSocket, nextEvent as next,
} from './lib/socketio.mjs';

const PROFILE = path.join(BROWSER_TESTS_DIR, 'profiles', 'signaling-compat.yaml.in');

let tmp; let d; let members;
const sockets = [];
const outsider = crypto.randomBytes(32).toString('hex'); // well-formed, not allowlisted

before(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-sio-compat-'));
  members = generateIdentities(tmp, { circle: 'sio' }).map((j) => j.keyHash);
  d = await startSignalingParleyd(PROFILE, tmp, { member1: members[0], member2: members[1] });
});

after(async () => {
  for (const s of sockets) s.close();
  await d?.stop();
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

// Relay's client socket (useMessages.ts: websocket, then polling), recording every event.
const open = () => openSocket(d.url, { sockets, transports: ['websocket', 'polling'] });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Relay's api.ts POST: no proof headers (compat).
async function postBlob(recipientHash) {
  const res = await fetch(`${d.url}/api/blobs?recipientKeyHash=${recipientHash}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: crypto.randomBytes(65536),
  });
  return res.status;
}

test('compat: join_blob on connect, refresh on an unauthenticated POST, outsiders refused', async () => {
  const [m1] = members;
  const s = open();
  await next(s, 'connect');
  s.emit('join_blob', m1); // exactly as useMessages.ts on "connect"
  await sleep(200);
  const refresh = next(s, 'refresh');
  assert.equal(await postBlob(m1), 201);
  assert.deepEqual(await refresh, []);
  // leave_blob (useMessages.ts cleanup): no more refreshes.
  s.emit('leave_blob', m1);
  await sleep(200);
  const before = s.events.filter((e) => e.event === 'refresh').length;
  assert.equal(await postBlob(m1), 201);
  await sleep(500);
  assert.equal(s.events.filter((e) => e.event === 'refresh').length, before);
  // A key hash not on the allowlist cannot be watched.
  const o = open();
  await next(o, 'connect');
  const err = next(o, 'error');
  o.emit('join_blob', outsider);
  assert.deepEqual((await err)[0], { error: 'not allowed' });
  assert.ok(o.connected);
  s.close();
  o.close();
});

test('compat: join_room and signal between two unauthenticated clients, Relay payloads', async () => {
  const [m1, m2] = members;
  const a = open();
  const b = open();
  await Promise.all([next(a, 'connect'), next(b, 'connect')]);
  const allowed = [m1, m2];
  const am = next(a, 'members');
  a.emit('join_room', 'call-test', m1, allowed);
  assert.deepEqual((await am)[0], []);
  const joined = next(a, 'peer_joined');
  const bm = next(b, 'members');
  b.emit('join_room', 'call-test', m2, allowed);
  assert.deepEqual((await bm)[0], [{ id: a.id, keyHash: m1 }]);
  assert.deepEqual((await joined)[0], { id: b.id, keyHash: m2 });

  const sdp = { type: 'offer', sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };
  const sig = next(b, 'signal');
  a.emit('signal', { to: b.id, type: 'offer', sdp });
  assert.deepEqual((await sig)[0], { from: a.id, type: 'offer', sdp });
  const ans = next(a, 'signal');
  b.emit('signal', { to: a.id, type: 'answer', sdp });
  assert.deepEqual((await ans)[0], { from: b.id, type: 'answer', sdp });
  const st = next(b, 'peer_call_state');
  a.emit('call_state', 'call-test', { muted: true, deafened: false });
  assert.deepEqual((await st)[0], { id: a.id, muted: true, deafened: false });

  const bId = b.id;
  const left = next(a, 'peer_left');
  b.close();
  assert.deepEqual(await left, [bId]);
  const last = next(a, 'last_to_leave');
  a.emit('leave_room', 'call-test');
  assert.deepEqual(await last, []);
  a.close();
});

test('compat: a key hash not on the allowlist cannot join a call or signal; no auth deadline', async () => {
  const [m1] = members;
  const a = open();
  const c = open();
  await Promise.all([next(a, 'connect'), next(c, 'connect')]);
  const am = next(a, 'members');
  a.emit('join_room', 'call-test', m1, [m1, outsider]);
  await am;
  const refused = next(c, 'room_join_error');
  c.emit('join_room', 'call-test', outsider, [m1, outsider]);
  assert.deepEqual((await refused)[0], { message: 'Not allowed to join this call.' });
  // Claiming an allowlisted member's hash in a room whose ACL lacks it is refused too.
  const refused2 = next(c, 'room_join_error');
  c.emit('join_room', 'call-test', members[2], [m1, members[2]]);
  assert.deepEqual((await refused2)[0], { message: 'Not allowed to join this call.' });
  const cerr = next(c, 'error');
  c.emit('signal', { to: a.id, type: 'offer', sdp: { type: 'offer', sdp: 'v=0' } });
  assert.ok(['authentication required', 'recipient is not in your call'].includes((await cerr)[0].error));
  assert.ok(!a.events.some((e) => e.event === 'signal'));
  // relay.auth_timeout is 3 s in the profile: compat sockets are not held to it.
  await sleep(3500);
  assert.ok(a.connected && c.connected);
  assert.ok(!c.events.some((e) => e.event === 'disconnect'));
  a.close();
  c.close();
});

test('compat on /ws: {"type":"join_blob","keyHash":H} without auth, refresh; outsiders refused', async () => {
  const [m1] = members;
  const ws = new WebSocket(`${d.url.replace(/^http/, 'ws')}/ws`);
  const frames = [];
  const waiters = [];
  ws.on('message', (data) => {
    const f = JSON.parse(data.toString());
    frames.push(f);
    for (const w of waiters.splice(0)) w();
  });
  const nextFrame = async (type, ms = 5000) => {
    const end = Date.now() + ms;
    for (;;) {
      const i = frames.findIndex((f) => f.type === type);
      if (i >= 0) return frames.splice(i, 1)[0];
      if (Date.now() > end) throw new Error(`no ${type}; got ${JSON.stringify(frames)}`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 100); });
    }
  };
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  await nextFrame('challenge'); // still offered to clients that can prove a key
  ws.send(JSON.stringify({ type: 'join_blob', keyHash: outsider }));
  assert.equal((await nextFrame('error')).error, 'not allowed');
  ws.send(JSON.stringify({ type: 'join_blob', keyHash: m1 }));
  await sleep(200);
  assert.equal(await postBlob(m1), 201);
  await nextFrame('refresh');
  ws.close();
});
