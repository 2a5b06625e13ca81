// parley ctl against a real parleyd: status, plugins, rooms, log-level, reload and drain, in
// human and --json form, with the documented exit codes (0 ok, 1 the command failed, 2 usage,
// 3 no answer from parleyd).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { ctl, freePort, sleep, spawnParleyd, tempDir, waitHealthy, wsClient } from './ops_lib.mjs';

const work = tempDir('ctl');
const confDir = path.join(work, 'conf');
const state = path.join(work, 'state');
const sock = path.join(state, 'control.sock');
let d;
let port;
const clients = [];

const profileText = (extra = '') => `profile: ctltest
state_dir: ${state}
store: history
log: {level: info, format: json}
drain: {grace: 3s}
plugins:
  - name: history
    plugin: store-memory
  - name: web
    plugin: transport-ws
    config: {host: 127.0.0.1, port: ${port}, protocol: raw, threads: 1${extra}}
`;

// --profile NAME finds NAME.yaml in $PARLEY_CONFIG_DIR (the cwd has no etc/).
const byName = (args) => ctl(['--profile', 'ctltest', ...args], { cwd: work, env: { PARLEY_CONFIG_DIR: confDir } });

before(async () => {
  port = await freePort();
  fs.mkdirSync(confDir);
  fs.writeFileSync(path.join(confDir, 'ctltest.yaml'), profileText());
  d = spawnParleyd(path.join(confDir, 'ctltest.yaml'));
  await waitHealthy(d, port);
  // Two rooms: "secret-room-name" with two members, "other" with one.
  for (const room of ['secret-room-name', 'secret-room-name', 'other']) {
    const c = wsClient(`ws://127.0.0.1:${port}/ws/${room}`);
    await c.opened;
    clients.push(c);
  }
  for (let i = 0; i < 50; i++) {
    const r = byName(['--json', 'rooms']);
    if (r.json?.rooms === 2) break;
    await sleep(100);
  }
});
after(async () => {
  if (d) await d.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

test('status: uptime, connections, rooms, plugins with versions, state', async () => {
  await sleep(1100);
  const j = byName(['--json', 'status']);
  assert.equal(j.code, 0, j.stderr);
  assert.equal(j.json.ok, true);
  assert.equal(j.json.profile, 'ctltest');
  assert.equal(j.json.pid, d.pid);
  assert.ok(j.json.uptime_seconds >= 1, `uptime ${j.json.uptime_seconds}`);
  assert.equal(j.json.connections, 3);
  assert.equal(j.json.rooms, 2);
  assert.equal(j.json.draining, false);
  assert.match(j.json.version, /^\d+\.\d+\.\d+/);
  assert.deepEqual(j.json.plugins.map((p) => [p.instance, p.plugin, p.kind]),
    [['history', 'store-memory', 'store'], ['web', 'transport-ws', 'transport']]);
  for (const p of j.json.plugins) assert.match(p.version, /^\d+\.\d+\.\d+$/);
  const h = byName(['status']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /^profile\s+ctltest$/m);
  assert.match(h.stdout, /^uptime\s+[1-9]\d*s$/m);
  assert.match(h.stdout, /^state\s+running$/m);
  assert.match(h.stdout, /^connections\s+3$/m);
  assert.match(h.stdout, /^rooms\s+2$/m);
  assert.match(h.stdout, /^web\s+transport-ws\s+\d+\.\d+\.\d+\s+transport/m);
});

test('plugins: table and JSON', () => {
  const h = byName(['plugins']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /^INSTANCE\s+PLUGIN\s+VERSION\s+KIND\s+ABI$/m);
  assert.match(h.stdout, /^history\s+store-memory\s+\d+\.\d+\.\d+\s+store\s+\d+\.\d+$/m);
  const j = byName(['--json', 'plugins']);
  assert.equal(j.code, 0);
  assert.equal(j.json.plugins.length, 2);
  assert.equal(j.json.plugins[1].file, 'parley-transport-ws.so');
});

test('rooms: counts only, never names', () => {
  const j = byName(['--json', 'rooms']);
  assert.equal(j.code, 0);
  assert.equal(j.json.rooms, 2);
  assert.equal(j.json.connections, 3);
  assert.equal(Object.values(j.json.members_histogram).reduce((a, b) => a + b, 0), 2);
  const h = byName(['rooms']);
  assert.match(h.stdout, /^rooms\s+2$/m);
  for (const out of [j.stdout, h.stdout]) assert.doesNotMatch(out, /secret-room-name|other/);
});

test('log-level: show, set (takes effect), refuse unknown', async () => {
  let r = byName(['log-level']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), 'log level info');
  assert.doesNotMatch(d.logs(), /"level":"debug"/);
  r = byName(['log-level', 'debug']);
  assert.equal(r.code, 0, r.stderr);
  byName(['status']);
  for (let i = 0; i < 20 && !/"level":"debug"/.test(d.logs()); i++) await sleep(50);
  assert.match(d.logs(), /"level":"debug"/, 'debug lines after log-level debug');
  r = byName(['--json', 'log-level']);
  assert.equal(r.json.level, 'debug');
  r = byName(['log-level', 'loud']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown level 'loud'/);
  assert.equal(byName(['log-level', 'info']).code, 0);
});

test('reload: reports what changed; a bad profile is a failure with the reason', () => {
  const file = path.join(confDir, 'ctltest.yaml');
  fs.writeFileSync(file, profileText(', rate: 33'));
  let r = byName(['reload']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^reloaded:\ninstance 'web' reconfigured$/m);
  fs.writeFileSync(file, profileText(', rate: -5'));
  r = byName(['reload']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: reload refused, keeping the running profile/m);
  assert.match(r.stderr, /rate/);
  fs.writeFileSync(file, profileText(', rate: 33'));
  for (const c of clients) assert.equal(c.closed, null);
});

test('exit codes: usage 2, unknown profile 2, no daemon 3', () => {
  assert.equal(ctl([]).code, 2);
  assert.equal(ctl(['--socket', sock]).code, 2, 'no command');
  const u = ctl(['--socket', sock, 'explode']);
  assert.equal(u.code, 2);
  assert.match(u.stderr, /unknown command 'explode'/);
  assert.equal(ctl(['--profile', 'no-such-profile', 'status'], { cwd: work, env: { PARLEY_CONFIG_DIR: confDir } }).code, 2);
  const n = ctl(['--socket', path.join(work, 'nobody.sock'), 'status']);
  assert.equal(n.code, 3);
  assert.match(n.stderr, /is parleyd running/);
  const help = ctl(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /exit codes: 0 ok, 1 the command failed, 2 usage, 3 no answer/);
});

test('drain: status shows draining, reload is refused, clients get 1001, exit 0', async () => {
  const r = ctl(['--socket', sock, 'drain']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'draining');
  const j = ctl(['--socket', sock, '--json', 'status']);
  assert.equal(j.code, 0, `status while draining: ${j.stderr}`);
  assert.equal(j.json.draining, true);
  assert.match(ctl(['--socket', sock, 'status']).stdout, /^state\s+draining$/m);
  const rl = ctl(['--socket', sock, 'reload']);
  assert.equal(rl.code, 1);
  assert.match(rl.stderr, /draining/);
  // New clients are refused while draining; the old ones stay until the grace period ends.
  const late = wsClient(`ws://127.0.0.1:${port}/ws/late`);
  await assert.rejects(late.opened);
  for (const c of clients) assert.equal(c.closed, null);
  for (const c of clients) assert.equal(await c.closedP, 1001);
  const e = await d.exited;
  assert.equal(e.code, 0, d.logs());
  assert.equal(ctl(['--socket', sock, 'status']).code, 3, 'socket must be gone after exit');
  assert.ok(!fs.existsSync(sock));
});
