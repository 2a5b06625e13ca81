// Reload without drops: two WebSocket clients of a running parleyd keep their connection and keep
// exchanging messages across reloads (SIGHUP and `parley ctl reload`) that change kernel limits,
// allowed origins, the relay allowlist and add a second transport-ws listener; a change that needs
// a restart is named in the log and the reply; a bad profile keeps the running one and `parley ctl
// reload` exits 1 with the validation error; a new instance that cannot start fails the reload.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { ctl, freePort, portFile, runParley, sleep, spawnParleyd, tempDir, waitHealthy, wsClient } from './ops_lib.mjs';

const work = tempDir('reload');
const state = path.join(work, 'state');
const file = path.join(work, 'ops-reload.yaml');
let d;
after(async () => {
  if (d) await d.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

function profile({ port, members, origins, allowlist, web2 = false, web3Port = 0, extraWebKey = '', rate = 50 }) {
  return `profile: ops-reload
state_dir: ${state}
store: history
log: {level: info, format: json}
limits:
  members_per_room: ${members}
drain:
  grace: 1s
plugins:
  - name: history
    plugin: store-memory
    config: {history_limit: 10, history_ttl: 1h}
  - name: web
    plugin: transport-ws
    config:
      host: 127.0.0.1
      port: ${port}
      protocol: raw
      threads: 1
      rate: ${rate}
      origins: [${origins.map((o) => JSON.stringify(o)).join(', ')}]${extraWebKey}
  - name: relay
    plugin: relay
    config:
      allowlist: ${allowlist}
      allowlist_poll: 0s
${web2 ? `  - name: web2
    plugin: transport-ws
    config: {host: 127.0.0.1, port: 0, protocol: raw, threads: 1, origins: ["http://a.example"]}
` : ''}${web3Port ? `  - name: web3
    plugin: transport-ws
    config: {host: 127.0.0.1, port: ${web3Port}, protocol: raw, threads: 1}
` : ''}`;
}

const A = 'http://a.example';
const B = 'http://b.example';

function client(port, room, origin = A) {
  return wsClient(`ws://127.0.0.1:${port}/ws/${room}`, { origin });
}

// `from` sends a fresh text; every one of `to` must receive it.
async function exchange(from, to) {
  const msg = `m-${crypto.randomBytes(6).toString('hex')}`;
  from.send(msg);
  await Promise.all(to.map((c) => c.wait((t) => t === msg, 5000)));
}

// The first exchange of a fresh member also waits for its join, which completes after the upgrade.
async function exchangeUntilJoined(from, to) {
  for (let i = 0; i < 30; i++) {
    try { await exchange(from, to); return; } catch { await sleep(100); }
  }
  await exchange(from, to);
}

async function allowed(port, keyHash) {
  const r = await fetch(`http://127.0.0.1:${port}/api/keys/allowed?keyHash=${keyHash}`);
  return (await r.json()).allowed;
}

async function upgradeStatus(port, origin) {
  const c = wsClient(`ws://127.0.0.1:${port}/ws/probe`, { origin });
  try { await c.opened; c.close(); return 101; } catch (e) { return Number(String(e.message).replace(/\D/g, '')); }
}

// The daemon's output reaches us asynchronously: poll for a line (bounded).
async function waitLog(re, ms = 5000) {
  for (let i = 0; i < ms / 50 && !re.test(d.logs()); i++) await sleep(50);
  assert.match(d.logs(), re);
}

function countReloads() {
  return (d.logs().match(/reloaded profile 'ops-reload'/g) || []).length;
}

async function sighup(text) {
  const before = countReloads();
  fs.writeFileSync(file, text);
  process.kill(d.pid, 'SIGHUP');
  for (let i = 0; i < 100 && countReloads() === before; i++) await sleep(50);
  assert.equal(countReloads(), before + 1, `SIGHUP did not reload:\n${d.logs()}`);
}

function identities(name) {
  const out = path.join(work, name);
  const r = runParley(['identities', 'generate', '--count', '1', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  return { allowlist: path.join(out, 'allowlist.json'), key: JSON.parse(fs.readFileSync(path.join(out, 'allowlist.json'), 'utf8')).keyHashes[0] };
}

test('live WebSocket clients survive reloads that change limits, origins, allowlist and instances', async () => {
  const port = await freePort();
  const id1 = identities('ids1');
  const id2 = identities('ids2');
  const base = { port, members: 2, origins: [A], allowlist: id1.allowlist };
  fs.writeFileSync(file, profile(base));
  d = spawnParleyd(file);
  await waitHealthy(d, port);

  const a = client(port, 'r');
  const b = client(port, 'r');
  await a.opened; await b.opened;
  await exchangeUntilJoined(a, [b]);
  await exchange(b, [a]);

  // Before: a third member is refused (members_per_room 2), origin B is refused, id2 unknown.
  const c0 = client(port, 'r');
  assert.equal(await c0.closedP, 1008, 'third member should be refused with 1008 (room full)');
  assert.equal(await upgradeStatus(port, B), 403);
  assert.equal(await allowed(port, id1.key), true);
  assert.equal(await allowed(port, id2.key), false);

  // 1. SIGHUP: limits, origins, allowlist, and a second listener.
  await sighup(profile({ ...base, members: 4, origins: [A, B], allowlist: id2.allowlist, web2: true }));
  assert.equal(a.closed, null, 'client a was dropped by the reload');
  assert.equal(b.closed, null, 'client b was dropped by the reload');
  await exchange(a, [b]);
  assert.equal(await upgradeStatus(port, B), 101, 'origin B not allowed after reload');
  assert.equal(await allowed(port, id2.key), true, 'new allowlist not applied');
  assert.equal(await allowed(port, id1.key), false, 'old allowlist still applied');
  const port2 = await portFile(d, path.join(state, 'web2.port'));
  assert.notEqual(port2, port);
  const c = client(port, 'r', B);
  const e = client(port2, 'r'); // the new listener joins the same room
  await c.opened; await e.opened;
  await exchangeUntilJoined(a, [b, c, e]);
  await exchange(e, [a, b, c]);
  await waitLog(/instance 'web2' added/);

  // 2. ctl reload with a restart-only change (port) and a live one (rate): named, not applied.
  const other = await freePort();
  fs.writeFileSync(file, profile({ ...base, port: other, members: 4, origins: [A, B], allowlist: id2.allowlist, web2: true, rate: 60 }));
  let r = ctl(['--socket', path.join(state, 'control.sock'), 'reload']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /instance 'web': port need a restart/);
  await waitLog(/instance 'web': port need a restart/);
  await exchange(b, [a, c, e]);
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200, 'old port must keep serving');

  // 3. A bad profile: refused with the validation error (file, line, key); the old one stays.
  fs.writeFileSync(file, profile({ ...base, members: 2, origins: [A], allowlist: id1.allowlist, web2: true, extraWebKey: '\n      bogus_key: 1' }));
  r = ctl(['--socket', path.join(state, 'control.sock'), 'reload']);
  assert.equal(r.code, 1, `bad profile reload must exit 1: ${r.stdout}`);
  assert.match(r.stderr, /bogus_key/);
  assert.match(r.stderr, /ops-reload\.yaml:\d+/);
  assert.match(r.stderr, /keeping the running profile/);
  const rj = ctl(['--socket', path.join(state, 'control.sock'), '--json', 'reload']);
  assert.equal(rj.code, 1);
  assert.equal(rj.json.ok, false);
  assert.match(rj.json.error, /bogus_key/);
  assert.equal(await upgradeStatus(port, B), 101, 'refused reload changed origins');
  assert.equal(await allowed(port, id2.key), true, 'refused reload changed the allowlist');
  await exchange(c, [a, b, e]);

  // 4. A SIGHUP with the same bad file: logged, nothing changes, nobody dropped.
  process.kill(d.pid, 'SIGHUP');
  for (let i = 0; i < 100 && (d.logs().match(/reload refused/g) || []).length < 3; i++) await sleep(50);
  assert.equal((d.logs().match(/reload refused/g) || []).length, 3, d.logs());
  await exchange(a, [b, c, e]);

  // 5. A new instance that cannot start (its port is taken by `web`): the reload fails, exit 1.
  fs.writeFileSync(file, profile({ ...base, members: 4, origins: [A, B], allowlist: id2.allowlist, web2: true, web3Port: port }));
  r = ctl(['--socket', path.join(state, 'control.sock'), 'reload']);
  assert.equal(r.code, 1, `failed instance start must fail the reload: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, /new instance 'web3' failed to start: cannot listen on 127\.0\.0\.1:\d+: Address already in use \(port \d+ of instance 'web3'/);
  await exchange(e, [a, b, c]);

  for (const x of [a, b, c, e]) assert.equal(x.closed, null, 'a client was dropped');
  const st = ctl(['--socket', path.join(state, 'control.sock'), '--json', 'status']);
  assert.equal(st.json.connections, 4);
  assert.deepEqual(st.json.plugins.map((p) => p.instance).sort(), ['history', 'relay', 'web', 'web2']);

  // SIGTERM: the clients get 1001 (going away) and the daemon exits 0.
  const exit = await d.stop();
  assert.equal(exit.code, 0, d.logs());
  for (const x of [a, b, c, e]) assert.equal(await x.closedP, 1001);
  // Message content never reaches the log.
  assert.doesNotMatch(d.logs(), /m-[0-9a-f]{12}/);
});
