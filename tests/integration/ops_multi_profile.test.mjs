// Several profiles on one host: the shipped etc/bench.yaml, etc/relay.yaml and
// etc/link-room.yaml, copied to a temp dir with their own ports, metrics ports and state dirs,
// run at once; each serves HTTP, one WebSocket exchange and `parley ctl status`. Then profiles
// that clash with them (same port, same state_dir, same metrics port) must fail at start with a
// clear error while the three keep running.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import {
  SOURCE_DIR, ctl, freePort, rewrite, runParley, spawnParleyd, tempDir, waitHealthy, wsClient,
} from './ops_lib.mjs';

const work = tempDir('multi');
const running = {}; // name -> {d, port, metrics, state, file}

// Copies etc/<name>.yaml with fresh ports, its own state dir and (relay) allowlist.
async function deriveProfile(name, extra = (t) => t) {
  let text = fs.readFileSync(path.join(SOURCE_DIR, 'etc', `${name}.yaml`), 'utf8');
  const dir = path.join(work, name);
  const state = path.join(dir, 'state');
  fs.mkdirSync(dir, { recursive: true });
  text = rewrite(text, /^state_dir: .*$/m, () => `state_dir: ${state}`);
  const ports = [];
  for (const m of text.matchAll(/^(\s+)port: \d+/gm)) ports.push(m);
  const fresh = await Promise.all(ports.map(() => freePort()));
  let i = 0;
  text = rewrite(text, /^(\s+)port: \d+/gm, (_m, ind) => `${ind}port: ${fresh[i++]}`);
  const metrics = await freePort();
  text = rewrite(text, /^(\s+)metrics_port: \d+/gm, (_m, ind) => `${ind}metrics_port: ${metrics}`);
  text = extra(text, dir);
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, text);
  return { file, state, port: fresh[0], metrics, dir, text };
}

before(async () => {
  // relay needs an allowlist: a small circle made with the real CLI.
  const ids = path.join(work, 'relay-ids');
  const g = runParley(['identities', 'generate', '--count', '2', '--out', ids, '--circle', 'ops']);
  assert.equal(g.status, 0, g.stderr);
  for (const name of ['bench', 'relay', 'link-room']) {
    const p = await deriveProfile(name, (t) => name === 'relay'
      ? rewrite(t, /^(\s+)allowlist: \S+/m, (_m, ind) => `${ind}allowlist: ${path.join(ids, 'allowlist.json')}`)
      : t);
    running[name] = { ...p, d: spawnParleyd(p.file) };
  }
  running.relay.identity = path.join(ids, 'identity-01.json');
  running.relay.keyHash = JSON.parse(fs.readFileSync(running.relay.identity, 'utf8')).keyHash;
  for (const r of Object.values(running)) await waitHealthy(r.d, r.port);
});

after(async () => {
  // Stop every daemon before judging any, so a failure never leaves processes behind.
  const exits = await Promise.all(Object.values(running).map((r) => r.d.stop()));
  fs.rmSync(work, { recursive: true, force: true });
  Object.values(running).forEach((r, i) =>
    assert.equal(exits[i].code, 0, `parleyd did not drain to exit 0: ${JSON.stringify(exits[i])}\n${r.d.logs()}`));
});

const iv = () => Buffer.alloc(12, 7).toString('base64url');

async function exerciseLinkRoom() {
  const { port } = running['link-room'];
  const page = await fetch(`http://127.0.0.1:${port}/new_chat`);
  assert.equal(page.status, 200);
  const room = crypto.randomBytes(8).toString('hex');
  const a = wsClient(`ws://127.0.0.1:${port}/ws/${room}?client=aaaa1111`);
  const b = wsClient(`ws://127.0.0.1:${port}/ws/${room}?client=bbbb2222`);
  await a.opened; await b.opened;
  await a.wait((t) => JSON.parse(t).type === 'history');
  await b.wait((t) => JSON.parse(t).type === 'history');
  const ct = crypto.randomBytes(24).toString('base64url');
  a.send({ type: 'message', iv: iv(), ciphertext: ct });
  const got = JSON.parse(await b.wait((t) => JSON.parse(t).type === 'message'));
  assert.equal(got.ciphertext, ct);
  assert.equal(got.from, 'aaaa1111');
  return [a, b];
}

async function exerciseBench() {
  const { port } = running.bench;
  const h = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
  assert.equal(typeof h.rooms, 'number');
  const room = crypto.randomBytes(16).toString('hex');
  const a = wsClient(`ws://127.0.0.1:${port}/ws`);
  const b = wsClient(`ws://127.0.0.1:${port}/ws`);
  await a.opened; await b.opened;
  a.send({ type: 'join', roomId: room, adminHash: crypto.randomBytes(32).toString('hex'), payload: 'a' });
  await a.wait((t) => JSON.parse(t).type === 'welcome');
  b.send({ type: 'join', roomId: room, adminHash: '', payload: 'b' });
  await b.wait((t) => JSON.parse(t).type === 'welcome');
  const p = crypto.randomBytes(30).toString('base64');
  a.send({ type: 'message', roomId: room, payload: p });
  const got = JSON.parse(await b.wait((t) => JSON.parse(t).type === 'message'));
  assert.equal(got.payload, p);
  return [a, b];
}

async function exerciseRelay() {
  const { port, keyHash } = running.relay;
  assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/health`)).json(), { ok: true });
  const allowed = await (await fetch(`http://127.0.0.1:${port}/api/keys/allowed?keyHash=${keyHash}`)).json();
  assert.deepEqual(allowed, { allowed: true });
  const notAllowed = await (await fetch(`http://127.0.0.1:${port}/api/keys/allowed?keyHash=${'0'.repeat(64)}`)).json();
  assert.deepEqual(notAllowed, { allowed: false });
  if (/^\s+protocol: relay\b/m.test(running.relay.text)) {
    // The relay dialect: prove an allowlisted key (challenge-response), then watch the mailbox.
    const id = JSON.parse(fs.readFileSync(running.relay.identity, 'utf8'));
    const sk = Buffer.from(id.signing.secretKey, 'base64'); // libsodium: seed || public key
    const key = crypto.createPrivateKey({
      format: 'jwk',
      key: { kty: 'OKP', crv: 'Ed25519', d: sk.subarray(0, 32).toString('base64url'), x: sk.subarray(32).toString('base64url') },
    });
    const c = wsClient(`ws://127.0.0.1:${port}/ws`);
    await c.opened;
    const { nonce } = JSON.parse(await c.wait((t) => JSON.parse(t).type === 'challenge'));
    const signature = crypto.sign(null, Buffer.from(`parley-relay-auth-v1\n${nonce}`), key).toString('base64');
    c.send({ type: 'auth', publicKey: id.signing.publicKey, signature });
    const authed = JSON.parse(await c.wait((t) => JSON.parse(t).type === 'authed'));
    assert.equal(authed.keyHash, keyHash);
    c.send({ type: 'join_blob' });
    const other = wsClient(`ws://127.0.0.1:${port}/ws`);
    await other.opened;
    return [c, other];
  }
  // The raw dialect: /ws/<room> relays text to the other members.
  const a = wsClient(`ws://127.0.0.1:${port}/ws/ops-room`);
  const b = wsClient(`ws://127.0.0.1:${port}/ws/ops-room`);
  await a.opened; await b.opened;
  // Joins complete on the server after the upgrade: resend until b hears one (bounded).
  const msg = `hello-${crypto.randomBytes(4).toString('hex')}`;
  for (let i = 0; i < 20 && !b.frames.includes(msg); i++) { a.send(msg); await new Promise((r) => setTimeout(r, 100)); }
  await b.wait((t) => t === msg, 2000);
  return [a, b];
}

async function metricsOf(name) {
  const r = await fetch(`http://127.0.0.1:${running[name].metrics}/metrics`);
  assert.equal(r.status, 200, `${name} metrics listener`);
  return r.text();
}

function statusOf(name, minConnections) {
  const r = ctl(['--profile', running[name].file, '--json', 'status']);
  assert.equal(r.code, 0, `${name}: ctl status: ${r.stderr}`);
  assert.equal(r.json.ok, true);
  assert.equal(r.json.profile, name);
  assert.equal(r.json.pid, running[name].d.pid, `${name}: ctl reached another daemon`);
  assert.equal(r.json.draining, false);
  assert.ok(r.json.connections >= minConnections, `${name}: ${r.json.connections} connections`);
  assert.ok(r.json.plugins.some((p) => p.plugin === 'transport-ws'), `${name}: no transport in ${JSON.stringify(r.json.plugins)}`);
  for (const p of r.json.plugins) assert.match(p.version, /^\d+\.\d+\.\d+/);
  const human = ctl(['--profile', running[name].file, 'status']);
  assert.equal(human.code, 0);
  assert.match(human.stdout, new RegExp(`^profile\\s+${name}$`, 'm'));
  assert.match(human.stdout, /^state\s+running$/m);
  return r.json;
}

async function exerciseAll() {
  const clients = [...await exerciseLinkRoom(), ...await exerciseBench(), ...await exerciseRelay()];
  for (const name of ['bench', 'relay', 'link-room']) {
    statusOf(name, 2);
    assert.match(await metricsOf(name), /^parley_ws_connections\S* [1-9]/m, `${name} metrics`);
  }
  await Promise.all(clients.map((c) => c.close()));
}

test('bench, relay and link-room run side by side and each serves', async () => {
  await exerciseAll();
  // Each has its own control socket and state files.
  for (const r of Object.values(running)) {
    assert.ok(fs.existsSync(path.join(r.state, 'control.sock')));
    assert.equal(Number(fs.readFileSync(path.join(r.state, 'web.port'), 'utf8')), r.port);
  }
});

// A fourth profile that clashes exits 1 with `pattern` in its output; nobody else is harmed.
async function expectClash(label, makeText, pattern) {
  const dir = path.join(work, `clash-${label}`);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'clash.yaml');
  fs.writeFileSync(file, await makeText(dir));
  const d = spawnParleyd(file);
  const t = setTimeout(() => d.child.kill('SIGKILL'), 20000);
  const e = await d.exited;
  clearTimeout(t);
  assert.equal(e.code, 1, `${label}: clashing profile was not refused (${JSON.stringify(e)}):\n${d.logs()}`);
  assert.match(d.logs(), pattern, `${label}: unclear error:\n${d.logs()}`);
}

// link-room again with its own state dir and ports; `patch` then reintroduces one clash.
async function linkRoomCopy(dir, patch) {
  let t = fs.readFileSync(path.join(SOURCE_DIR, 'etc', 'link-room.yaml'), 'utf8');
  t = rewrite(t, /^profile: .*$/m, () => 'profile: clash');
  t = rewrite(t, /^state_dir: .*$/m, () => `state_dir: ${path.join(dir, 'state')}`);
  t = rewrite(t, /^(\s+)port: \d+/gm, (_m, ind) => `${ind}port: @PORT@`);
  t = rewrite(t, /^(\s+)metrics_port: \d+/gm, (_m, ind) => `${ind}metrics_port: @METRICS@`);
  t = t.replace('@PORT@', String(await freePort())).replace('@METRICS@', String(await freePort()));
  return patch(t);
}

test('a profile on a port another profile uses is refused, naming port and instance', async () => {
  const taken = running['link-room'].port;
  await expectClash('port', (dir) => linkRoomCopy(dir, (t) => rewrite(t, /^(\s+)port: \d+/m, (_m, ind) => `${ind}port: ${taken}`)),
    new RegExp(String.raw`start failed: cannot listen on 127\.0\.0\.1:${taken}: Address already in use \(port ${taken} of instance 'web': another profile`));
});

test('a profile on the state_dir (control socket) of another is refused', async () => {
  const st = running.bench.state;
  await expectClash('state', (dir) => linkRoomCopy(dir, (t) => rewrite(t, /^state_dir: .*$/m, () => `state_dir: ${st}`)),
    new RegExp(`another parleyd already serves control socket ${st.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/control.sock`));
  // The bench daemon still owns its socket.
  assert.ok(fs.existsSync(path.join(st, 'control.sock')));
});

test('a profile on the metrics port of another is refused', async () => {
  const mp = running.relay.metrics;
  await expectClash('metrics', (dir) => linkRoomCopy(dir, (t) => rewrite(t, /^(\s+)metrics_port: \d+/m, (_m, ind) => `${ind}metrics_port: ${mp}`)),
    new RegExp(`instance 'web'.*start failed.*127\\.0\\.0\\.1:${mp}.*in use`, 'i'));
});

test('after the refused clashes the three profiles still serve', async () => {
  for (const r of Object.values(running)) assert.equal(r.d.exit, null, `a daemon died:\n${r.d.logs()}`);
  await exerciseAll();
});
