// Privacy audit: one parleyd with log.level trace (debug and below) runs link-room (store-pg
// history, a room password), bench (admin token) and the relay blob API (signed requests)
// through a scenario;
// bench also sends an image and issues a federation pairing token (claimed: no park here);
// then no plaintext, room key, room password, admin token, identity private key or client
// address (127.0.0.1 in any form) may appear in parleyd's output or in a pg_dump of the
// database, raw or as hex/base64; and stored blobs carry no exact send time (expiry at minute
// granularity, 72..96 h after the send day's midnight, as plugins/relay/README.md promises).
// Also PostgreSQL's own server log. Run under tests/integration/pg_env.sh. Env: PARLEYD,
// PARLEY_CLI, PARLEY_TEST_PG, PARLEY_TEST_PG_DIR.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startParleyd } from '../browser/lib/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(HERE, '../browser/package.json'));
const WebSocket = require('ws');
const nacl = require('tweetnacl');

const { PARLEYD, PARLEY_CLI: CLI, PARLEY_TEST_PG: PG } = process.env;
if (!PARLEYD || !CLI || !PG || !process.env.PARLEY_TEST_PG_DIR) throw new Error('PARLEYD, PARLEY_CLI and PARLEY_TEST_PG(_DIR) must be set');

const b64 = (b) => Buffer.from(b).toString('base64');
const b64url = (b) => Buffer.from(b).toString('base64url');
const sha256hex = (d) => crypto.createHash('sha256').update(d).digest('hex');

// Every form a secret could leak in: as is, hex (bytea in a dump), base64, base64url.
function forms(secret) {
  const buf = Buffer.isBuffer(secret) ? secret : Buffer.from(secret, 'utf8');
  const out = [buf.toString('hex'), b64(buf).replace(/=+$/, ''), b64url(buf)];
  if (!Buffer.isBuffer(secret)) out.push(secret);
  // Deduplicated: base64 without + or / equals base64url (else one leak counts twice).
  return [...new Set(out.filter((f) => f.length >= 8))];
}

function pgBin(name) {
  const dirs = fs.readdirSync('/usr/lib/postgresql').sort().reverse();
  for (const d of dirs) {
    const p = `/usr/lib/postgresql/${d}/bin/${name}`;
    if (fs.existsSync(p)) return p;
  }
  return name;
}

function wsOpen(url) {
  const ws = new WebSocket(url);
  const frames = [];
  const waiters = [];
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    frames.push(f);
    for (const w of waiters.splice(0)) w();
  });
  const next = async (pred, ms = 10_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = frames.findIndex(pred);
      if (i >= 0) return frames.splice(i, 1)[0];
      if (Date.now() > deadline) throw new Error(`no matching frame; have ${JSON.stringify(frames)}`);
      await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
    }
  };
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ ws, next, send: (o) => ws.send(JSON.stringify(o)) }));
    ws.on('error', reject);
  });
}

function runCli(args, env = {}) {
  return new Promise((resolve) => {
    const p = spawn(CLI, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('exit', (code) => resolve({ code, out }));
  });
}

test('privacy audit: logs and PostgreSQL hold no secrets, no client address, no send time', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-privacy-'));
  const [linkPort, benchPort, relayPort] = [await freePort(), await freePort(), await freePort()];
  execFileSync(CLI, ['identities', 'generate', '--count', '2', '--out', path.join(tmp, 'ids'), '--circle', 'audit'], { stdio: 'pipe' });
  const ids = [1, 2].map((i) => JSON.parse(fs.readFileSync(path.join(tmp, 'ids', `identity-0${i}.json`), 'utf8')));
  const profile = path.join(tmp, 'audit.yaml');
  fs.writeFileSync(profile, `
profile: privacy-audit
state_dir: ${tmp}/state
store: db
log: {level: trace, format: json}   # trace: everything debug logs and more
drain: {grace: 200ms}
# Three protocols in one process (one log to audit): their room names are one namespace.
plugins:
  - name: db
    plugin: store-pg
    config: {conninfo: "${PG}", history_limit: 50, history_ttl: 1h, max_record: 64K}
  - name: link
    plugin: transport-ws
    config: {port: ${linkPort}, protocol: link, threads: 1, shared_room_names: true, link: {password_delay: 0s}}
  - name: bench
    plugin: transport-ws
    config: {port: ${benchPort}, protocol: bench, threads: 1, shared_room_names: true}
  - name: relayws
    plugin: transport-ws
    config: {port: ${relayPort}, protocol: raw, threads: 1, shared_room_names: true, max_http_body: 80K}
  - name: relay
    plugin: relay
    config: {allowlist: ${tmp}/ids/allowlist.json, mode: secure, post_rate: 0, proof_window: 120s}
`);
  const logFile = path.join(tmp, 'parleyd.log');
  const d = await startParleyd({ profile, port: linkPort, logFile });
  const secrets = {};
  try {
    // ---- link-room: real AES-GCM through `parley chat`, the key only in the fragment ----
    const key = crypto.randomBytes(32);
    secrets.roomKey = key;
    const room = 'audit-' + crypto.randomBytes(6).toString('hex');
    secrets.linkPlain1 = 'plaintext-alpha-' + crypto.randomBytes(6).toString('hex');
    secrets.linkPlain2 = 'plaintext-bravo-' + crypto.randomBytes(6).toString('hex');
    const invite = `http://127.0.0.1:${linkPort}/room/${room}#${b64url(key)}`;
    const reader = runCli(['chat', invite, '--name', 'Reader', '--wait-for', secrets.linkPlain2, '--timeout', '60']);
    await new Promise((r) => setTimeout(r, 1000));
    for (const text of [secrets.linkPlain1, secrets.linkPlain2]) {
      const r = await runCli(['chat', invite, '--name', 'Writer', '--send', text, '--timeout', '30']);
      assert.equal(r.code, 0, `parley chat --send failed: ${r.out}`);
    }
    const got = await reader;
    assert.equal(got.code, 0, `the reader did not see the second message: ${got.out}`);

    // A password-protected room (the password crosses the wire; the server keeps a hash).
    secrets.password = 'pw-' + crypto.randomBytes(9).toString('hex');
    const pwRoom = 'pw-' + crypto.randomBytes(6).toString('hex');
    const a = await wsOpen(`ws://127.0.0.1:${linkPort}/ws/${pwRoom}?client=aaaa0001`);
    a.send({ type: 'auth', password: secrets.password, create: true });
    await a.next((f) => f.type === 'auth_ok' || f.type === 'error');
    const b = await wsOpen(`ws://127.0.0.1:${linkPort}/ws/${pwRoom}?client=bbbb0002`);
    b.send({ type: 'auth', password: secrets.password });
    await b.next((f) => f.type === 'auth_ok');
    b.send({ type: 'auth', password: secrets.password + 'x' }); // a wrong one too
    a.ws.close(); b.ws.close();

    // ---- bench: admin token only ever sent raw in admin actions ----
    const token = crypto.randomBytes(24);
    secrets.adminToken = token;
    const benchRoom = 'r' + crypto.randomBytes(6).toString('hex');
    const admin = await wsOpen(`ws://127.0.0.1:${benchPort}/ws`);
    admin.send({ type: 'join', roomId: benchRoom, adminHash: sha256hex(token), payload: 'admin' });
    await admin.next((f) => f.type === 'welcome');
    const guest = await wsOpen(`ws://127.0.0.1:${benchPort}/ws`);
    guest.send({ type: 'join', roomId: benchRoom, adminHash: '', payload: 'guest' });
    await guest.next((f) => f.type === 'welcome');
    secrets.benchPayload = 'bench-opaque-' + crypto.randomBytes(6).toString('hex');
    admin.send({ type: 'message', roomId: benchRoom, payload: b64(secrets.benchPayload) });
    await guest.next((f) => f.type === 'message');
    // An image (sealed bytes in base64; a readable marker stands in for the plaintext).
    const image = crypto.randomBytes(4096);
    secrets.benchImage = 'bench-image-' + crypto.randomBytes(6).toString('hex');
    Buffer.from(secrets.benchImage).copy(image, 64);
    admin.send({ type: 'image', roomId: benchRoom, payload: b64(image) });
    assert.equal((await guest.next((f) => f.type === 'image')).payload, b64(image));
    // A federation pairing token: issued to the admin, claimed (no park here: an error).
    admin.send({ type: 'request_pair', roomId: benchRoom, payload: b64(token), adminHash: 'bench-b' });
    const pairToken = (await admin.next((f) => f.type === 'pair_token')).payload.split('|')[0];
    assert.equal(Buffer.from(pairToken, 'base64').length, 32);
    secrets.pairToken = Buffer.from(pairToken, 'base64');
    guest.send({ type: 'claim_pair', roomId: benchRoom, payload: pairToken });
    await guest.next((f) => f.type === 'error');
    admin.send({ type: 'make_public', roomId: benchRoom, payload: b64(token) });
    await guest.next((f) => f.type === 'made_public');
    admin.send({ type: 'make_public', roomId: benchRoom, payload: b64(crypto.randomBytes(24)) }); // wrong token
    await admin.next((f) => f.type === 'error');
    admin.ws.close(); guest.ws.close();

    // ---- relay blob API, signed requests ----
    const [alice, bob] = ids;
    secrets.aliceSecret = Buffer.from(alice.signing.secretKey, 'base64');
    if (alice.exchange?.secretKey) secrets.aliceExchangeSecret = Buffer.from(alice.exchange.secretKey, 'base64');
    const kp = nacl.sign.keyPair.fromSecretKey(secrets.aliceSecret);
    const body = crypto.randomBytes(65536);
    const marker = 'blob-plain-' + crypto.randomBytes(6).toString('hex');
    Buffer.from(marker).copy(body, 100); // a readable marker inside the (normally sealed) blob
    const target = `/api/blobs?recipientKeyHash=${bob.keyHash}`;
    const stamp = String(Math.floor(Date.now() / 1000));
    const sig = nacl.sign.detached(Buffer.from(`POST\n${target}\n${stamp}\n${sha256hex(body)}`), kp.secretKey);
    const sentAt = Date.now();
    const res = await fetch(`http://127.0.0.1:${relayPort}${target}`, {
      method: 'POST', body,
      headers: { 'Content-Type': 'application/octet-stream', 'X-Parley-Key': b64(kp.publicKey), 'X-Parley-Timestamp': stamp, 'X-Parley-Signature': b64(sig) },
    });
    assert.equal(res.status, 201, await res.text());

    // ---- the database ----
    const dump = execFileSync(pgBin('pg_dump'), ['-d', PG, '--data-only'], { maxBuffer: 256 << 20 }).toString();
    const expiries = execFileSync(pgBin('psql'), ['-d', PG, '-At', '-c', 'SELECT extract(epoch from expires_at) FROM blobs'])
      .toString().trim().split('\n').filter(Boolean).map(Number);
    assert.equal(expiries.length, 1, 'one blob stored');
    const midnight = Math.floor(sentAt / 86400_000) * 86400;
    for (const e of expiries) {
      assert.equal(e % 60, 0, `blob expiry ${e} has sub-minute precision`);
      assert.ok(e >= midnight + 72 * 3600 && e <= midnight + 96 * 3600, `blob expiry ${e} outside 72..96 h of the send day`);
    }
    // The marker inside the blob is stored (opaque payload) but only as bytea hex: it must not
    // show up in the log in any form.
    await d.stop();
    const logs = fs.readFileSync(logFile, 'utf8');
    assert.ok(logs.split('\n').filter((l) => l.includes('"level":"debug"')).length > 0, 'debug logging was on');

    const leaks = [];
    const scan = (where, text) => {
      const lower = text.toLowerCase();
      for (const [name, s] of Object.entries(secrets))
        for (const f of forms(s)) if (lower.includes(f.toLowerCase())) leaks.push(`${name} in ${where} as ${f.slice(0, 24)}…`);
      for (const ip of ['127.0.0.1', '::ffff:127.0.0.1', '7f000001', '2130706433', '0100007f'])
        if (lower.includes(ip)) leaks.push(`client address in ${where} as ${ip}`);
    };
    // The profile path and conninfo are in the log's startup lines; the listen address too.
    // Strip the known, non-client occurrences: "host":"127.0.0.1" style listener lines.
    const logLines = logs.split('\n').filter((l) => !/"msg":"listening on /.test(l));
    // The scanner itself must find what it looks for (a test that cannot fail is a defect).
    scan('self-test', `x${key.toString('hex').toUpperCase()}y ::ffff:127.0.0.1 ${b64(token)}`);
    assert.deepEqual(leaks.map((l) => l.split(' ')[0]), ['roomKey', 'adminToken', 'client', 'client']);
    leaks.length = 0;
    if (process.env.PRIVACY_AUDIT_SHOW) console.log(logs.split('\n').filter((l) => /"msg":"listening on /.test(l)).join('\n'));
    scan('parleyd log', logLines.join('\n'));
    scan('pg_dump', dump);
    // PostgreSQL's own log at its default settings: an error's DETAIL line quotes key values
    // (a unique violation prints "Key (col)=(value)"), and SQL text built with literals would
    // show in an error's STATEMENT line.
    const pgLog = fs.readFileSync(path.join(process.env.PARLEY_TEST_PG_DIR, 'server.log'), 'utf8');
    assert.match(pgLog, /database system is ready to accept connections/, 'the PostgreSQL server log was found');
    scan('PostgreSQL server log', pgLog);
    // The blob's bytes are stored (opaque, sealed by real clients) but never logged.
    if (logs.includes(marker) || logs.includes(Buffer.from(marker).toString('hex'))) leaks.push('blob content in parleyd log');
    assert.deepEqual(leaks, [], `leaks:\n${leaks.join('\n')}`);
  } finally {
    await d.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
