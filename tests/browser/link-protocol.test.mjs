// Link dialect protocol details against a real parleyd, over plain WebSockets (npm ws):
// directed messages, validation errors, abuse closing with 1008, members-per-room and
// rooms-per-address limits, and history replay to a late joiner.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

import { startParleyd, freePort, writeProfile } from './lib/harness.mjs';

const PROFILE = process.env.PARLEY_LINK_PROTOCOL_PROFILE ?? path.resolve('profiles/link-protocol.yaml.in');
if (!process.env.PARLEYD) {
  if (process.env.PARLEY_REQUIRE_BROWSER === '1') throw new Error('PARLEYD not set');
}
let server;
let base;

before(async () => {
  const port = await freePort();
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-lp-'));
  const profile = await writeProfile(PROFILE, { port, stateDir });
  server = await startParleyd({ profile, port });
  base = `ws://127.0.0.1:${port}`;
});
after(async () => server?.stop());

const iv = () => Buffer.alloc(12, 7).toString('base64url');
const ct = (s) => Buffer.from(s).toString('base64url');

// A client that records every frame and lets a test wait for one matching a predicate.
function client(room, id) {
  const ws = new WebSocket(`${base}/ws/${room}?client=${id}`);
  const frames = [];
  const waiters = [];
  let closed = null;
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    frames.push(f);
    for (const w of [...waiters]) if (w.pred(f)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(f); }
  });
  const closedP = new Promise((r) => ws.on('close', (code) => { closed = code; r(code); }));
  const c = {
    ws, frames, closedP,
    get closed() { return closed; },
    // Several clients open at once and are awaited in turn: one may be open (or closed) before
    // its turn, when a listener added now would never fire.
    open: () => new Promise((r, j) => {
      if (ws.readyState === WebSocket.OPEN) return r();
      if (ws.readyState !== WebSocket.CONNECTING) return j(new Error(`closed (${closed})`));
      ws.once('open', r);
      ws.once('error', j);
      ws.once('close', () => j(new Error(`closed (${closed})`)));
    }),
    send: (o) => ws.send(typeof o === 'string' ? o : JSON.stringify(o)),
    wait(pred, ms = 5000) {
      const hit = frames.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        waiters.push(w);
        setTimeout(() => reject(new Error(`timeout waiting; frames: ${JSON.stringify(frames)}`)), ms);
      });
    },
  };
  return c;
}

test('directed message reaches only the named member and is not stored', async () => {
  const [a, b, c] = [client('dm1', 'aaaa1111'), client('dm1', 'bbbb2222'), client('dm1', 'cccc3333')];
  for (const x of [a, b, c]) { await x.open(); await x.wait((f) => f.type === 'history'); }
  a.send({ type: 'message', to: 'BBBB2222', iv: iv(), ciphertext: ct('for b only') });
  const got = await b.wait((f) => f.type === 'message');
  assert.equal(got.from, 'aaaa1111');
  assert.equal(got.to, 'bbbb2222');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(c.frames.filter((f) => f.type === 'message').length, 0, 'c got a directed message');
  a.send({ type: 'message', to: 'zzzz9999', iv: iv(), ciphertext: ct('x') });
  await a.wait((f) => f.type === 'error' && f.code === 'no_such_member');
  const late = client('dm1', 'dddd4444');
  await late.open().catch(() => {});
  // members_per_room is 3: the fourth member is refused with room_full and 1008.
  assert.equal(await late.closedP, 1008);
  assert.ok(late.frames.some((f) => f.type === 'error' && f.code === 'room_full'));
  for (const x of [a, b, c]) x.ws.close();
});

test('history replays broadcast messages to a late joiner, without directed ones', async () => {
  const a = client('hist1', 'aaaa1111');
  await a.open();
  await a.wait((f) => f.type === 'history');
  a.send({ type: 'message', iv: iv(), ciphertext: ct('one') });
  a.send({ type: 'message', iv: iv(), ciphertext: ct('two') });
  await new Promise((r) => setTimeout(r, 300));
  const b = client('hist1', 'bbbb2222');
  await b.open();
  const h = await b.wait((f) => f.type === 'history');
  assert.deepEqual(h.messages.map((m) => Buffer.from(m.ciphertext, 'base64url').toString()), ['one', 'two']);
  for (const m of h.messages) {
    assert.equal(m.from, 'aaaa1111');
    assert.equal(typeof m.sentAt, 'number');
  }
  a.ws.close(); b.ws.close();
});

test('bad envelopes get error frames; repeated abuse closes with 1008', async () => {
  const a = client('bad1', 'aaaa1111');
  await a.open();
  await a.wait((f) => f.type === 'history');
  a.send('not json');
  await a.wait((f) => f.type === 'error' && f.code === 'bad_envelope');
  a.send({ type: 'nope' });
  await a.wait((f) => f.type === 'error' && f.code === 'unknown_type');
  a.send({ type: 'message', iv: 'short', ciphertext: ct('x') });
  await a.wait((f) => f.type === 'error' && f.code === 'bad_iv');
  a.send({ type: 'message', iv: iv(), ciphertext: 'not base64url!' });
  await a.wait((f) => f.type === 'error' && f.code === 'bad_ciphertext');
  for (let i = 0; i < 10; i++) a.send({ type: 'nope' });
  assert.equal(await a.closedP, 1008);
});

test('invalid room or client ids are refused before the upgrade', async () => {
  for (const url of [`${base}/ws/room?client=ab`, `${base}/ws/${'x'.repeat(65)}?client=abcd1234`, `${base}/ws/r%20r?client=abcd1234`]) {
    const ws = new WebSocket(url);
    const status = await new Promise((r) => ws.on('unexpected-response', (_req, res) => r(res.statusCode)));
    assert.equal(status, 400, url);
  }
});

test('one address may create only rooms_per_ip rooms per hour', async () => {
  // rooms_per_ip is 3 and earlier tests created some rooms from this address too: within four
  // fresh rooms held open at once, creation must be refused, and stay refused.
  const held = [];
  let refusedAt = -1;
  for (let i = 0; i < 4; i++) {
    const n = client(`fresh-room-${i}`, 'aaaa1111');
    await n.open().catch(() => {});
    const f = await n.wait((x) => x.type === 'history' || (x.type === 'error' && x.code === 'room_limit'));
    if (f.type === 'error') {
      assert.equal(await n.closedP, 1008);
      if (refusedAt < 0) refusedAt = i;
    } else {
      assert.equal(refusedAt, -1, 'a room was created after a refusal');
      held.push(n);
    }
  }
  assert.ok(refusedAt >= 0, 'four new rooms from one address were all created');
  // Joining an existing room (one of those created above) is not a creation.
  if (held.length) {
    const a = client(`fresh-room-0`, 'eeee5555');
    await a.open();
    await a.wait((f) => f.type === 'history');
    held.push(a);
  }
  for (const x of held) x.ws.close();
});
