// integration.nats_federation: two benches (two parleyd), each on its own nats-server, the two
// servers joined by a cluster route. Authenticated federation end to end: pairing (expired,
// wrong claimer, reused token), public rooms both ways, private rooms never, forged, unsigned,
// replayed and malformed NATS traffic dropped and counted, and a nats-server restart that
// parleyd survives.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startParleyd, writeProfile, BROWSER_TESTS_DIR } from './lib/harness.mjs';
import {
  BenchClient, MiniNats, makeCerts, metrics, natsServerBin, newAdminToken, sleep, startNats, tmpDir, until,
} from './nats_fed_lib.mjs';

const PROFILE = path.join(BROWSER_TESTS_DIR, 'profiles', 'nats-fed.yaml.in');
const TLS_PROFILE = path.join(BROWSER_TESTS_DIR, 'profiles', 'nats-fed-tls.yaml.in');
const TOKEN_TTL_MS = 2000;
const skip = !process.env.PARLEYD || !natsServerBin();
if (skip && process.env.PARLEY_REQUIRE_SERVER) throw new Error('PARLEYD and nats-server are required');

let dir, n1, n2, A, B, spy;
const clients = [];
const seen = []; // every federation message on the park: {subject, data}

async function bench(name, nats) {
  const port = await freePort();
  const metricsPort = await freePort();
  const stateDir = path.join(dir, `state-${name}`);
  fs.mkdirSync(stateDir, { recursive: true });
  const profile = await writeProfile(PROFILE, {
    port, stateDir, dir: fs.mkdtempSync(path.join(dir, 'p-')),
    vars: { METRICS_PORT: String(metricsPort), NATS_URL: nats.url, BENCH_ID: name, FED_MODE: 'authenticated', TOKEN_TTL: `${TOKEN_TTL_MS}ms` },
  });
  const p = await startParleyd({ profile, port, logFile: path.join(dir, `${name}.log`) });
  p.metricsPort = metricsPort;
  p.stateDir = stateDir;
  p.name = name;
  p.profile = profile;
  return p;
}

async function client(p, room, adminToken) {
  const c = await BenchClient.open(p.url);
  clients.push(c);
  await c.join(room, adminToken);
  return c;
}

const dropped = async (p, reason) => (await metrics(p.metricsPort))[`parley_federation_dropped_total{reason="${reason}"}`] ?? 0;

before(async () => {
  if (skip) return;
  dir = await tmpDir('parley-natsfed-');
  const [c1, c2] = [await freePort(), await freePort()];
  n1 = await startNats({ dir, name: 'n1', clusterPort: c1, routes: [c2] });
  n2 = await startNats({ dir, name: 'n2', clusterPort: c2, routes: [c1] });
  // The route is up once a message published on n1 reaches a subscriber on n2.
  const probe2 = await MiniNats.connect(n2.port);
  const probe1 = await MiniNats.connect(n1.port);
  let got = false;
  await probe2.sub('probe', () => { got = true; });
  await until('the n1-n2 route', async () => { probe1.pub('probe', 'x'); await probe1.flush(); await sleep(50); return got; }, 15_000);
  probe1.close(); probe2.close();
  A = await bench('benchA', n1);
  B = await bench('benchB', n2);
  spy = await MiniNats.connect(n1.port);
  await spy.sub('parley.fed.v1.>', (subject, data) => seen.push({ subject, data }));
});

after(async () => {
  for (const c of clients) c.close();
  spy?.close();
  const logs = [];
  for (const p of [A, B]) if (p) { await p.stop(); logs.push(p.logs()); }
  await n1?.stop(); await n2?.stop();
  // Nothing secret in the logs: no pairing token, no admin token, no message text.
  for (const l of logs) {
    for (const s of secrets) assert.ok(!l.includes(s), 'a secret reached the logs');
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const secrets = [];
const adminA = newAdminToken(), adminB = newAdminToken();
secrets.push(adminA, adminB);
let a1, b1; // admins of room "park-room" on A and B
let pairedToken;

test('health says federation is on', { skip }, async () => {
  for (const p of [A, B]) {
    const h = await (await fetch(`${p.url}/health`)).json();
    assert.equal(h.federation, true);
  }
});

test('pairing: expired token, wrong claimer and reused token are rejected; a good one pairs', { skip }, async () => {
  a1 = await client(A, 'park-room', adminA);
  b1 = await client(B, 'park-room', adminB);
  for (const [c, t] of [[a1, adminA], [b1, adminB]]) {
    c.send({ type: 'make_public', payload: t });
    await c.next((m) => m.type === 'made_public');
  }
  const ask = async (claimer) => {
    a1.send({ type: 'request_pair', payload: adminA, adminHash: claimer });
    const f = await a1.next((m) => m.type === 'pair_token');
    const [token, who] = f.payload.split('|');
    assert.equal(who, claimer);
    secrets.push(token);
    return token;
  };
  const claim = async (token) => {
    b1.send({ type: 'claim_pair', payload: token });
    await b1.next((m) => m.type === 'pair_claim_sent');
  };
  // Not an admin: no token.
  a1.send({ type: 'request_pair', payload: newAdminToken(), adminHash: 'benchB' });
  await a1.next((m) => m.type === 'error' && m.payload === 'invalid admin token');

  const expired = await ask('benchB');
  await sleep(TOKEN_TTL_MS + 500);
  await claim(expired);
  await b1.next((m) => m.type === 'error' && /rejected: token expired/.test(m.payload));

  const forX = await ask('benchX');
  await claim(forX);
  await b1.next((m) => m.type === 'error' && /rejected: bench id mismatch/.test(m.payload));

  pairedToken = await ask('benchB');
  await claim(pairedToken);
  const ok = await b1.next((m) => m.type === 'pair_approved', 10_000, 'pair_approved');
  assert.equal(ok.payload, 'benchA');
  assert.ok(!b1.has((m) => m.type === 'error'));

  await claim(pairedToken);
  await b1.next((m) => m.type === 'error' && /rejected: token already used/.test(m.payload));

  // The raw token never crosses NATS.
  for (const t of [expired, forX, pairedToken]) {
    const raw = Buffer.from(t, 'base64');
    assert.ok(!seen.some((s) => s.data.includes(raw) || s.data.includes(Buffer.from(t))), 'token on NATS');
  }
  // Room ids never appear on subjects.
  assert.ok(seen.length > 0 && !seen.some((s) => s.subject.includes('park-room')));
});

test('public room flows both ways; a private room does not', { skip }, async () => {
  a1.send({ type: 'message', payload: 'from-A-1' });
  const atB = await b1.next((m) => m.type === 'message' && m.payload === 'from-A-1');
  assert.equal(atB.senderId, a1.id);
  b1.send({ type: 'message', payload: 'from-B-1' });
  const atA = await a1.next((m) => m.type === 'message' && m.payload === 'from-B-1');
  assert.equal(atA.senderId, b1.id);
  // A second member joining on A is seen on B (join notice) and its messages flow.
  const a2 = await client(A, 'park-room');
  await b1.next((m) => m.type === 'join' && m.senderId === a2.id);
  a2.send({ type: 'message', payload: 'from-A2' });
  await b1.next((m) => m.type === 'message' && m.payload === 'from-A2');
  // Banned by A's admin: B sees it leave, as when a member leaves by itself.
  a1.send({ type: 'ban_client', payload: a2.id, adminToken: adminA });
  await a2.next((m) => m.type === 'kicked');
  await b1.next((m) => m.type === 'leave' && m.senderId === a2.id);

  // Private rooms of the same name on both benches: nothing crosses. The public message sent
  // after the private one is the barrier: once it arrived, the private one would have too.
  const pa = await client(A, 'private-room', newAdminToken());
  const pb = await client(B, 'private-room', newAdminToken());
  const before = seen.length;
  pa.send({ type: 'message', payload: 'private-from-A' });
  pb.send({ type: 'message', payload: 'private-from-B' });
  a1.send({ type: 'message', payload: 'barrier' });
  await b1.next((m) => m.payload === 'barrier');
  await sleep(300);
  assert.ok(!pb.has((m) => m.payload === 'private-from-A'));
  assert.ok(!pa.has((m) => m.payload === 'private-from-B'));
  assert.equal(seen.length - before, 1, 'only the public frame went to NATS');
  // A public room that is not paired does not federate either.
  const ua = await client(A, 'unpaired-room', adminA);
  const ub = await client(B, 'unpaired-room', newAdminToken());
  ua.send({ type: 'make_public', payload: adminA });
  await ua.next((m) => m.type === 'made_public');
  ua.send({ type: 'message', payload: 'unpaired' });
  a1.send({ type: 'message', payload: 'barrier2' });
  await b1.next((m) => m.payload === 'barrier2');
  await sleep(300);
  assert.ok(!ub.has((m) => m.payload === 'unpaired'));
});

// Envelope as federation.cpp documents it.
function envelope({ kind = 'M', pub, priv, seq, ts = Date.now(), body, subject, badSig = false }) {
  const head = Buffer.alloc(3 + 1 + 32 + 8 + 8);
  head.write('PF1', 0);
  head.write(kind, 3);
  pub.copy(head, 4);
  head.writeBigUInt64BE(BigInt(seq), 36);
  head.writeBigUInt64BE(BigInt(ts), 44);
  const signed = Buffer.concat([head, Buffer.from(body)]);
  const h = crypto.createHash('blake2b512')
    .update(Buffer.from('parley-fed-v1\0')).update(subject).update(Buffer.from([0])).update(signed).digest();
  let sig = crypto.sign(null, h, priv);
  if (badSig) sig = Buffer.alloc(64, 7);
  return Buffer.concat([signed, sig]);
}

function keyFromSeed(seed) {
  const priv = crypto.createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
  const pub = crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(-32);
  return { priv, pub };
}

test('forged, unsigned, replayed and malformed NATS messages are dropped and counted', { skip }, async () => {
  const roomSubject = seen.find((s) => s.subject.includes('.room.'))?.subject;
  assert.ok(roomSubject, 'saw a federated frame subject');
  const pairSubject = roomSubject.replace('.room.', '.pair.');
  const keyFile = path.join(A.stateDir, 'nats.key');
  const st = fs.statSync(keyFile);
  assert.equal(st.mode & 0o777, 0o600);
  const a = keyFromSeed(Buffer.from(fs.readFileSync(keyFile, 'utf8').trim(), 'hex'));
  const evil = keyFromSeed(crypto.randomBytes(32));
  const frame = (p) => JSON.stringify({ type: 'message', payload: p, senderId: '00000000-0000-0000-0000-000000000000' });
  const pub = await MiniNats.connect(n2.port);
  const base = { ...(await metrics(B.metricsPort)) };
  const count = async (r) => ((await metrics(B.metricsPort))[`parley_federation_dropped_total{reason="${r}"}`] ?? 0) - (base[`parley_federation_dropped_total{reason="${r}"}`] ?? 0);

  // Control: A's own key, fresh sequence, valid frame: delivered. Proves the forgeries below
  // are refused for what is wrong with them, not for a wrong envelope format.
  let seq = Date.now() * 1000;
  const controlSeq = ++seq;
  pub.pub(roomSubject, envelope({ pub: a.pub, priv: a.priv, seq: controlSeq, body: frame('genuine'), subject: roomSubject }));
  await b1.next((m) => m.payload === 'genuine');

  // Signed by an unpaired key.
  pub.pub(roomSubject, envelope({ pub: evil.pub, priv: evil.priv, seq: 1, body: frame('forged-key'), subject: roomSubject }));
  // A's key claimed, signature garbage (unsigned).
  pub.pub(roomSubject, envelope({ pub: a.pub, priv: a.priv, seq: ++seq, body: frame('unsigned'), subject: roomSubject, badSig: true }));
  // Signed for another subject (moved envelope).
  pub.pub(roomSubject, envelope({ pub: a.pub, priv: a.priv, seq: ++seq, body: frame('moved'), subject: 'parley.fed.v1.room.other' }));
  // Replay of a genuine frame A published earlier.
  const genuine = seen.filter((s) => s.subject === roomSubject).at(-1);
  pub.pub(roomSubject, genuine.data);
  // Replay of the control message too (same seq).
  pub.pub(roomSubject, envelope({ pub: a.pub, priv: a.priv, seq: controlSeq, body: frame('replayed-seq'), subject: roomSubject }));
  // Stale timestamp.
  pub.pub(roomSubject, envelope({ pub: a.pub, priv: a.priv, seq: ++seq, ts: Date.now() - 3_600_000, body: frame('stale'), subject: roomSubject }));
  // Malformed: garbage, truncated, JSON, empty, a signed non-frame and a signed bad frame type.
  for (const junk of [crypto.randomBytes(200), Buffer.from('PF1'), Buffer.from('{"type":"message"}'), Buffer.alloc(0)]) pub.pub(roomSubject, junk);
  pub.pub(roomSubject, envelope({ pub: a.pub, priv: a.priv, seq: ++seq, body: 'not json', subject: roomSubject }));
  pub.pub(roomSubject, envelope({ pub: a.pub, priv: a.priv, seq: ++seq, body: JSON.stringify({ type: 'kicked', payload: 'x', senderId: 'y' }), subject: roomSubject }));
  for (const junk of [crypto.randomBytes(300), Buffer.alloc(0), Buffer.from('PF1A')]) pub.pub(pairSubject, junk);
  await pub.flush();

  // Barrier: a genuine message after all of the above.
  pub.pub(roomSubject, envelope({ pub: a.pub, priv: a.priv, seq: ++seq, body: frame('genuine-2'), subject: roomSubject }));
  await b1.next((m) => m.payload === 'genuine-2');
  for (const p of ['forged-key', 'unsigned', 'moved', 'replayed-seq', 'stale', 'x']) assert.ok(!b1.has((m) => m.payload === p), p);
  assert.ok(!b1.has((m) => m.type === 'kicked'));
  assert.ok(!b1.has((m) => m.payload === 'from-A-1'), 'the replayed frame was not delivered again');
  assert.equal(await count('unpaired'), 1);
  assert.equal(await count('bad_signature'), 2);
  assert.equal(await count('replay'), 2);
  assert.equal(await count('stale'), 1);
  assert.ok(await count('malformed') >= 9, `malformed ${await count('malformed')}`);

  // Forged approval: B claims a token nobody issued, then an attacker who saw the claim answers
  // with an approval it signs itself. B must not pair (no pair_approved, frames still refused).
  const r2 = await client(B, 'victim-room', newAdminToken());
  const claimSeen = seen.length;
  r2.send({ type: 'claim_pair', payload: crypto.randomBytes(32).toString('base64') });
  await r2.next((m) => m.type === 'pair_claim_sent');
  const claimMsg = await until('the claim on NATS', () => seen.slice(claimSeen).find((s) => s.subject.includes('.pair.')));
  const bPub = claimMsg.data.subarray(4, 36);
  const body = Buffer.concat([bPub, crypto.randomBytes(32), Buffer.from('benchEvil')]);
  pub.pub(claimMsg.subject, envelope({ kind: 'A', pub: evil.pub, priv: evil.priv, seq: 10, body, subject: claimMsg.subject }));
  const vSubject = claimMsg.subject.replace('.pair.', '.room.');
  pub.pub(vSubject, envelope({ pub: evil.pub, priv: evil.priv, seq: 11, body: frame('after-forged-approval'), subject: vSubject }));
  await until('forged approval counted', async () => (await count('forged_approval')) === 1);
  await until('unpaired counted', async () => (await count('unpaired')) === 2);
  await sleep(200);
  assert.ok(!r2.has((m) => m.type === 'pair_approved' || m.payload === 'after-forged-approval'));
  pub.close();

  // Both benches are alive and serving.
  for (const p of [A, B]) assert.equal((await fetch(`${p.url}/health`)).status, 200);
});

test('a nats-server restart is survived without restarting parleyd', { skip }, async () => {
  const pid = A.pid;
  await n1.stop();
  await until('A sees the disconnect', async () => (await metrics(A.metricsPort)).parley_nats_connected === 0);
  n1 = await startNats({ dir, name: 'n1', port: n1.port, clusterPort: n1.clusterPort, routes: [n2.clusterPort] });
  await until('A reconnected', async () => (await metrics(A.metricsPort)).parley_nats_connected === 1, 20_000);
  // Messages flow again both ways (retry: the route between n1 and n2 takes a moment).
  let i = 0;
  await until('A -> B after restart', async () => {
    a1.send({ type: 'message', payload: `after-restart-${++i}` });
    await sleep(200);
    return b1.has((m) => typeof m.payload === 'string' && m.payload.startsWith('after-restart-'));
  }, 20_000, 0);
  b1.send({ type: 'message', payload: 'B-after-restart' });
  await a1.next((m) => m.payload === 'B-after-restart');
  assert.equal(A.pid, pid);
  assert.ok((await metrics(A.metricsPort)).parley_nats_reconnects_total >= 1);
});

test('the identity key is created once and survives a restart', { skip }, async () => {
  const keyFile = path.join(A.stateDir, 'nats.key');
  const before = fs.readFileSync(keyFile, 'utf8');
  const identity = (logs) => logs.match(/authenticated mode, identity ([0-9a-f]{16})/)?.[1];
  const id1 = identity(A.logs());
  assert.ok(id1);
  assert.ok(/created a new bench identity key/.test(A.logs()));
  await A.stop();
  // A key file others can read is refused (the start fails, naming the problem).
  fs.chmodSync(keyFile, 0o644);
  const bad = await startParleyd({ profile: A.profile, port: A.port, timeoutMs: 5000 }).catch((e) => e);
  fs.chmodSync(keyFile, 0o600);
  // (parleyd may answer /healthz from the first plugin before the second one's create fails.)
  const refusal = bad instanceof Error ? bad.message
    : await until('the refusal', () => /readable by others/.test(bad.logs()) && bad.logs(), 5000);
  if (!(bad instanceof Error)) await bad.stop();
  const again = await startParleyd({ profile: A.profile, port: A.port, logFile: path.join(dir, 'benchA-2.log') });
  Object.assign(again, { metricsPort: A.metricsPort, stateDir: A.stateDir, name: A.name, profile: A.profile });
  A = again;
  assert.equal(fs.readFileSync(keyFile, 'utf8'), before);
  await until('the identity log line', () => identity(A.logs()));
  assert.equal(identity(A.logs()), id1);
  assert.ok(!/created a new bench identity key/.test(A.logs()));
  // The seed itself is never logged.
  assert.ok(!A.logs().includes(before.trim()));
  assert.match(refusal, /federation key file is readable by others/);
});

test('NATS over TLS with a user and password; a wrong password never connects', { skip }, async () => {
  const tdir = path.join(dir, 'tls');
  fs.mkdirSync(tdir);
  const certs = makeCerts(tdir);
  const tls = await startNats({
    dir: tdir, name: 'tls',
    extra: `tls {\n  cert_file: "${certs.cert}"\n  key_file: "${certs.key}"\n}\nauthorization {\n  user: benchc\n  password: "s3cret-pw"\n}`,
  });
  const start = async (name, password) => {
    const port = await freePort();
    const metricsPort = await freePort();
    const stateDir = path.join(tdir, `state-${name}`);
    fs.mkdirSync(stateDir);
    const profile = await writeProfile(TLS_PROFILE, {
      port, stateDir, dir: fs.mkdtempSync(path.join(tdir, 'p-')),
      vars: { METRICS_PORT: String(metricsPort), NATS_URL: `tls://127.0.0.1:${tls.port}`, BENCH_ID: name, CA: certs.ca, NATS_USER: 'benchc', NATS_PASSWORD: password },
    });
    const p = await startParleyd({ profile, port, logFile: path.join(tdir, `${name}.log`) });
    p.metricsPort = metricsPort;
    return p;
  };
  const good = await start('benchC', 's3cret-pw');
  const bad = await start('benchD', 'wrong-pw');
  try {
    await until('the TLS connection', async () => (await metrics(good.metricsPort)).parley_nats_connected === 1);
    await sleep(1500);
    const m = await metrics(bad.metricsPort).catch((e) => { throw new Error(`${e.message}; benchD exited ${JSON.stringify(bad.exited?.())}:\n${bad.logs()}`); });
    assert.equal(m.parley_nats_connected ?? 0, 0);
    assert.match(bad.logs(), /connection closed for good/);
    assert.equal((await (await fetch(`${bad.url}/health`)).json()).federation, true);
    for (const l of [good.logs(), bad.logs()]) assert.ok(!l.includes('s3cret-pw') && !l.includes('wrong-pw'));
  } finally {
    await good.stop();
    await bad.stop();
    await tls.stop();
  }
});
