// Relay blobs on store-pg against a real (throwaway) PostgreSQL: blobs survive a parleyd
// restart; a kill -9 of PostgreSQL in the middle of a POST burst loses no blob that got a 201,
// POSTs answer 503 with a JSON error while it is down, and parleyd recovers by itself once it
// is back (same process). Run under tests/integration/pg_env.sh (PARLEY_TEST_PG*).
//
// Env: PARLEYD, PARLEY_CLI, PARLEY_TEST_PG, PARLEY_TEST_PG_DIR, PARLEY_TEST_PG_ENV.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, startParleyd, writeProfile, BROWSER_TESTS_DIR } from './lib/harness.mjs';

const CLI = process.env.PARLEY_CLI;
const PG = process.env.PARLEY_TEST_PG;
const PROFILE = path.join(BROWSER_TESTS_DIR, 'profiles', 'relay-pg.yaml.in');
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let tmp;
let hashes;
let profile;
let port;

before(async () => {
  assert.ok(CLI && PG && process.env.PARLEYD, 'PARLEYD, PARLEY_CLI and PARLEY_TEST_PG must be set (run under pg_env.sh)');
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-relay-pg-'));
  execFileSync(CLI, ['identities', 'generate', '--count', '3', '--out', path.join(tmp, 'ids'), '--circle', 'pg'], { stdio: 'pipe' });
  hashes = JSON.parse(fs.readFileSync(path.join(tmp, 'ids', 'allowlist.json'), 'utf8')).keyHashes;
  port = await freePort();
  const stateDir = await fsp.mkdtemp(path.join(tmp, 'state-'));
  profile = await writeProfile(PROFILE, {
    port, stateDir, dir: stateDir,
    vars: { PG, ALLOWLIST: path.join(tmp, 'ids', 'allowlist.json') },
  });
});

after(async () => {
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

async function post(base, recipient, body) {
  const res = await fetch(`${base}/api/blobs?recipientKeyHash=${recipient}`, {
    method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body,
    signal: AbortSignal.timeout(15000),
  });
  return { status: res.status, type: res.headers.get('content-type') ?? '', json: await res.json().catch(() => null) };
}

async function list(base, recipient) {
  const res = await fetch(`${base}/api/blobs?recipientKeyHash=${recipient}`);
  assert.equal(res.status, 200);
  return res.json();
}

test('blobs stored on store-pg survive a parleyd restart', async () => {
  let d = await startParleyd({ profile, port });
  const sent = new Map();
  try {
    for (let i = 0; i < 3; i++) {
      const body = crypto.randomBytes(65536);
      const r = await post(d.url, hashes[0], body);
      assert.equal(r.status, 201, JSON.stringify(r.json));
      sent.set(r.json.id, { sha: sha(body), expiresAt: r.json.expiresAt });
    }
  } finally {
    await d.stop();
  }
  d = await startParleyd({ profile, port });
  try {
    const items = await list(d.url, hashes[0]);
    assert.equal(items.length, 3);
    for (const it of items) {
      const s = sent.get(it.id);
      assert.ok(s, 'a listed blob was never posted');
      assert.equal(sha(Buffer.from(it.payload, 'base64')), s.sha);
      assert.equal(it.expiresAt, s.expiresAt);
    }
    // Clean up for the next test.
    for (const it of items) assert.equal((await fetch(`${d.url}/api/blobs/${it.id}`, { method: 'DELETE' })).status, 204);
  } finally {
    await d.stop();
  }
});

// A SIGKILLed postmaster stays a zombie until init reaps it, and pg_ctl/postgres take a zombie
// for a running server ("lock file already exists"). Wait until every killed process is gone or
// a zombie; then a zombie postmaster's lock file is stale and goes.
async function waitDead(pids) {
  const state = (pid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    } catch { return 'gone'; }
  };
  const deadline = Date.now() + 15000;
  while (pids.some((p) => !['gone', 'Z', 'X'].includes(state(p))) && Date.now() < deadline) await sleep(25);
  if (!['Z', 'X'].includes(state(pids[0]))) return;
  const dir = process.env.PARLEY_TEST_PG_DIR;
  fs.rmSync(path.join(dir, 'data', 'postmaster.pid'), { force: true });
  for (const f of fs.readdirSync(dir)) if (/^\.s\.PGSQL\.\d+\.lock$/.test(f)) fs.rmSync(path.join(dir, f), { force: true });
}

// The postmaster's pid (first line of postmaster.pid) and every process whose parent it is.
function pgPids() {
  const pm = Number(fs.readFileSync(path.join(process.env.PARLEY_TEST_PG_DIR, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const kids = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pm) kids.push(Number(e));
    } catch { /* gone */ }
  }
  return [pm, ...kids];
}

test('kill -9 of PostgreSQL during a POST burst: no acknowledged blob lost, 503 while down, recovery', async () => {
  const d = await startParleyd({ profile, port });
  const acked = new Map(); // id -> { recipient, sha }
  const statuses = new Map();
  const bad = [];
  let stop = false;
  let okAfterRestart = 0;
  let restarted = false;
  let posted = 0;
  const worker = async (w) => {
    while (!stop) { // the main flow below bounds the burst in time
      posted++;
      const recipient = hashes[(posted + w) % hashes.length];
      const body = crypto.randomBytes(65536);
      let r;
      try {
        r = await post(d.url, recipient, body);
      } catch (e) {
        bad.push(`fetch failed: ${e}`);
        continue;
      }
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      if (r.status === 201) {
        acked.set(r.json.id, { recipient, sha: sha(body) });
        if (restarted) okAfterRestart++;
      } else if (r.status === 503) {
        if (!r.type.startsWith('application/json') || typeof r.json?.error !== 'string') bad.push(`503 without a JSON error: ${JSON.stringify(r)}`);
        await sleep(50); // do not spin while the store is down
      } else {
        bad.push(`unexpected ${r.status} ${JSON.stringify(r.json)}`);
      }
    }
  };
  try {
    const workers = [0, 1, 2, 3].map(worker);
    // Let some blobs through, then crash PostgreSQL (postmaster and backends) mid-burst.
    for (let i = 0; i < 200 && acked.size < 20; i++) await sleep(25);
    assert.ok(acked.size >= 20, 'the burst did not get going');
    const ackedBeforeKill = acked.size;
    const killed = pgPids();
    for (const pid of killed) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
    // While it is down, POSTs get 503.
    const downSince = Date.now();
    while (!statuses.get(503) && Date.now() - downSince < 10000) await sleep(25);
    assert.ok(statuses.get(503) > 0, `no 503 while PostgreSQL was down: ${JSON.stringify([...statuses])}`);
    await sleep(500);
    await waitDead(killed);
    execFileSync('bash', [process.env.PARLEY_TEST_PG_ENV, '--ctl', 'start'], { stdio: 'pipe' });
    restarted = true;
    // parleyd reconnects by itself: writes succeed again without a restart.
    const upSince = Date.now();
    while (okAfterRestart < 5 && Date.now() - upSince < 30000) await sleep(50);
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(bad, []);
    assert.ok(okAfterRestart >= 1, `no 201 after PostgreSQL came back: ${JSON.stringify([...statuses])}`);
    assert.ok(acked.size > ackedBeforeKill, 'nothing acknowledged after the restart');
    // Every acknowledged blob is there, intact. (Blobs that got 503 may or may not be: the
    // store cannot know whether a COMMIT in flight when the server died went through.)
    const seen = new Map();
    for (const h of hashes) for (const it of await list(d.url, h)) seen.set(it.id, { recipient: h, sha: sha(Buffer.from(it.payload, 'base64')) });
    const lost = [...acked].filter(([id, a]) => !seen.has(id) || seen.get(id).sha !== a.sha || seen.get(id).recipient !== a.recipient);
    assert.deepEqual(lost, [], `${lost.length} of ${acked.size} acknowledged blobs lost or altered`);
    assert.ok(d.logs().length > 0);
    console.log(`burst: ${posted} POSTs, statuses ${JSON.stringify([...statuses])}, ${acked.size} acknowledged, all kept`);
  } finally {
    stop = true;
    const exit = await d.stop();
    assert.equal(exit.code, 0, 'parleyd did not exit cleanly');
  }
});
