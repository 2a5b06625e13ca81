// integration.nats_compat: a parley bench in federation.mode benchtalks joins a park with a
// BenchTalks 1.2.0 bench (a stand-in following BenchTalks' subjects and payloads exactly, see
// nats_fed_standin.mjs) over a real nats-server. Pairing in both directions (and rejected
// claims), public frames both ways byte for byte, private rooms stay home, untrusted and
// malformed park messages are dropped and counted.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freePort, startParleyd, writeProfile, BROWSER_TESTS_DIR } from './lib/harness.mjs';
import { BenchClient, MiniNats, metrics, natsServerBin, newAdminToken, sleep, startNats, tmpDir, until } from './nats_fed_lib.mjs';
import { BenchTalksStandin, buildOutgoing } from './nats_fed_standin.mjs';

const PROFILE = path.join(BROWSER_TESTS_DIR, 'profiles', 'nats-fed.yaml.in');
const TOKEN_TTL_MS = 1500;
const skip = !process.env.PARLEYD || !natsServerBin();
if (skip && process.env.PARLEY_REQUIRE_SERVER) throw new Error('PARLEYD and nats-server are required');

let dir, n, P, nc, bt, spy;
const seen = [];
const clients = [];
const admin = newAdminToken();
let c1;

before(async () => {
  if (skip) return;
  dir = await tmpDir('parley-natscompat-');
  n = await startNats({ dir, name: 'park' });
  const port = await freePort();
  const metricsPort = await freePort();
  const stateDir = path.join(dir, 'state');
  fs.mkdirSync(stateDir);
  const profile = await writeProfile(PROFILE, {
    port, stateDir, dir,
    vars: { METRICS_PORT: String(metricsPort), NATS_URL: n.url, BENCH_ID: 'parleyBench', FED_MODE: 'benchtalks', TOKEN_TTL: `${TOKEN_TTL_MS}ms` },
  });
  P = await startParleyd({ profile, port, logFile: path.join(dir, 'parleyd.log') });
  P.metricsPort = metricsPort;
  nc = await MiniNats.connect(n.port);
  bt = new BenchTalksStandin(nc, 'btBench');
  await bt.start();
  spy = await MiniNats.connect(n.port);
  await spy.sub('>', (subject, data) => seen.push({ subject, data: data.toString() }));
  await until('parleyd connected to NATS', async () => (await metrics(metricsPort)).parley_nats_connected === 1);
});

after(async () => {
  for (const c of clients) c.close();
  nc?.close(); spy?.close();
  if (P) await P.stop();
  await n?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function client(room, adminToken) {
  const c = await BenchClient.open(P.url);
  clients.push(c);
  await c.join(room, adminToken);
  return c;
}

const count = async (what) => (await metrics(P.metricsPort))[what] ?? 0;

test('parley claims a BenchTalks token: approved, trust both ways', { skip }, async () => {
  const h = await (await fetch(`${P.url}/health`)).json();
  assert.equal(h.federation, true);
  c1 = await client('commons', admin);
  c1.send({ type: 'make_public', payload: admin });
  await c1.next((m) => m.type === 'made_public');
  bt.publicRooms.add('commons');

  const token = bt.generatePairToken('commons', 'parleyBench');
  c1.send({ type: 'claim_pair', payload: token });
  await c1.next((m) => m.type === 'pair_claim_sent');
  const claim = await until('the claim on NATS', () => seen.find((s) => s.subject === 'bench.pair.verify.commons'));
  assert.deepEqual(JSON.parse(claim.data), { claimerBenchId: 'parleyBench', rawToken: token });
  const ok = await c1.next((m) => m.type === 'pair_approved');
  assert.deepEqual(ok, { type: 'pair_approved', payload: 'btBench', senderId: '' });
  assert.ok(bt.isTrustedPeer('commons', 'parleyBench'));
});

test('public frames flow both ways byte for byte; a private room stays home', { skip }, async () => {
  c1.send({ type: 'message', payload: 'hello <park> & co' });
  const got = await until('BenchTalks got the frame', () => bt.delivered.find((d) => d.roomId === 'commons' && d.payload.includes('hello')));
  assert.equal(got.payload, buildOutgoing('message', 'hello <park> & co', c1.id).replace(/\\u003c/g, '<').replace(/\\u003e/g, '>').replace(/\\u0026/g, '&'));
  const wire = JSON.parse(seen.find((s) => s.subject === 'room.public.commons').data);
  assert.deepEqual(Object.keys(wire), ['benchId', 'payload']);
  assert.equal(wire.benchId, 'parleyBench');

  const sid = '0123abcd-0000-4000-8000-0123456789ab';
  const frame = buildOutgoing('message', 'from <BenchTalks>', sid);
  bt.broadcast('commons', frame);
  const m = await c1.next((f) => f.payload === 'from <BenchTalks>');
  assert.equal(m.senderId, sid);

  const priv = await client('closed', newAdminToken());
  const before = seen.length;
  priv.send({ type: 'message', payload: 'stays home' });
  c1.send({ type: 'message', payload: 'barrier' });
  await until('barrier on NATS', () => seen.slice(before).some((s) => s.subject === 'room.public.commons'));
  await sleep(200);
  assert.ok(!seen.slice(before).some((s) => s.subject.includes('closed') || s.data.includes('c3RheXMgaG9tZQ')));
});

test('BenchTalks claims a parley token: approved once; wrong claimer, reuse, expiry rejected', { skip }, async () => {
  const ask = async (claimer) => {
    c1.send({ type: 'request_pair', payload: admin, adminHash: claimer });
    const f = await c1.next((m) => m.type === 'pair_token');
    return f.payload.split('|')[0];
  };
  const answer = async (token, claimer) => {
    const from = bt.responses.length;
    bt.publishPairClaim('commons', token, claimer);
    return until('an answer from parley', () => bt.responses.slice(from).find((r) => r.approverBenchID === 'parleyBench'));
  };
  const t1 = await ask('btBench');
  const wrong = await answer(t1, 'someoneElse');
  assert.deepEqual(wrong, { subject: 'bench.pair.rejected.commons', claimerBenchId: 'someoneElse', approverBenchID: 'parleyBench', approved: false });
  const good = await answer(t1, 'btBench');
  assert.deepEqual(good, { subject: 'bench.pair.approved.commons', claimerBenchId: 'btBench', approverBenchID: 'parleyBench', approved: true });
  assert.ok(bt.delivered.some((d) => d.payload === buildOutgoing('pair_approved', 'parleyBench', '')));
  assert.equal((await answer(t1, 'btBench')).approved, false, 'reused');
  const t2 = await ask('btBench');
  await sleep(TOKEN_TTL_MS + 300);
  assert.equal((await answer(t2, 'btBench')).approved, false, 'expired');
});

test('untrusted and malformed park messages are dropped and counted', { skip }, async () => {
  const unpaired0 = await count('parley_federation_dropped_total{reason="unpaired"}');
  const malformed0 = await count('parley_federation_dropped_total{reason="malformed"}');
  const frame = (p) => buildOutgoing('message', p, 'x');
  const pub = (subject, data) => nc.pub(subject, data);
  pub('room.public.commons', `{"benchId":"intruder","payload":"${Buffer.from(frame('intruder')).toString('base64')}"}`);
  pub('room.public.closed', `{"benchId":"btBench","payload":"${Buffer.from(frame('not-paired-room')).toString('base64')}"}`);
  for (const junk of ['not json', '{"benchId":"btBench","payload":"***"}', '[]', '',
    `{"benchId":"btBench","payload":"${Buffer.from('{"type":"kicked","payload":"x","senderId":"y"}').toString('base64')}"}`,
    `{"benchId":"btBench","payload":"${Buffer.from('not a frame').toString('base64')}"}`]) pub('room.public.commons', junk);
  for (const junk of ['{{', '{"claimerBenchId":"x","rawToken":5}']) pub('bench.pair.verify.commons', junk);
  pub('bench.pair.approved.commons', 'garbage');
  await nc.flush();
  bt.broadcast('commons', frame('barrier-2'));
  await c1.next((m) => m.payload === 'barrier-2');
  await sleep(100);
  for (const p of ['intruder', 'not-paired-room']) assert.ok(!c1.has((m) => m.payload === p), p);
  assert.ok(!c1.has((m) => m.type === 'kicked'));
  assert.equal(await count('parley_federation_dropped_total{reason="unpaired"}') - unpaired0, 2);
  assert.equal(await count('parley_federation_dropped_total{reason="malformed"}') - malformed0, 9);
  assert.equal((await fetch(`${P.url}/health`)).status, 200);
});
