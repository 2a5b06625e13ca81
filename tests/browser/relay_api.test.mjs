// Relay blob API (plugins/relay) against a real parleyd: `parley identities generate` makes the
// circle, node's fetch + tweetnacl play the clients. Secure mode (signed requests) and compat
// mode (Relay's unauthenticated API + CORS) each get their own parleyd.
//
// Env: PARLEYD, PARLEY_CLI, PARLEY_RELAY_PROFILE (tests/browser/profiles/relay.yaml.in).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';
import { freePort, startParleyd, writeProfile, BROWSER_TESTS_DIR } from './lib/harness.mjs';

const PROFILE = process.env.PARLEY_RELAY_PROFILE
  || path.join(BROWSER_TESTS_DIR, 'profiles', 'relay.yaml.in');
const CLI = process.env.PARLEY_CLI;
const BLOB = 65536;
const DAY = 86400_000;
const WEB_ORIGIN = 'http://localhost:3000';

const b64 = (u8) => Buffer.from(u8).toString('base64');
const sha256hex = (data) => crypto.createHash('sha256').update(data).digest('hex');
// The key hash, computed independently of parley: hex(SHA-256(base64(raw Ed25519 pk))).
const keyHashOf = (pk) => sha256hex(b64(pk));

let tmp;
let members; // [{ file, json, keyPair, keyHash }]

function loadMember(file) {
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  const keyPair = nacl.sign.keyPair.fromSecretKey(Buffer.from(json.signing.secretKey, 'base64'));
  return { file, json, keyPair, keyHash: json.keyHash };
}

// Headers carrying a request proof: Ed25519 over METHOD\nPATH[?QUERY]\nTS\nhex(sha256(body)).
function proof(member, method, target, body = new Uint8Array(0), { ts, keyPair } = {}) {
  const kp = keyPair ?? member.keyPair;
  const stamp = String(ts ?? Math.floor(Date.now() / 1000));
  const msg = `${method}\n${target}\n${stamp}\n${sha256hex(body)}`;
  const sig = nacl.sign.detached(Buffer.from(msg, 'utf8'), kp.secretKey);
  return { 'X-Parley-Key': b64(kp.publicKey), 'X-Parley-Timestamp': stamp, 'X-Parley-Signature': b64(sig) };
}

async function startRelay({ mode, postRate = 1000, webOrigin = '' }) {
  const port = await freePort();
  const stateDir = await fsp.mkdtemp(path.join(tmp, `state-${mode}-`));
  const profile = await writeProfile(PROFILE, {
    port, stateDir, dir: stateDir,
    vars: { ALLOWLIST: path.join(tmp, `allowlist-${mode}.json`), MODE: mode, POST_RATE: String(postRate), WEB_ORIGIN: webOrigin },
  });
  fs.copyFileSync(path.join(tmp, 'ids', 'allowlist.json'), path.join(tmp, `allowlist-${mode}.json`));
  return startParleyd({ profile, port });
}

before(async () => {
  assert.ok(CLI, 'PARLEY_CLI is not set (path to the parley tool)');
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-relay-'));
  execFileSync(CLI, ['identities', 'generate', '--count', '4', '--out', path.join(tmp, 'ids'), '--circle', 'test'], { stdio: 'pipe' });
  members = [1, 2, 3, 4].map((i) => loadMember(path.join(tmp, 'ids', `identity-0${i}.json`)));
});

after(async () => {
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

describe('parley identities generate', () => {
  test('identity files are 0600, hold both keypairs and the public directory', () => {
    for (const m of members) {
      assert.equal(fs.statSync(m.file).mode & 0o777, 0o600);
      assert.equal(m.json.format, 'parley-relay-identity');
      assert.equal(m.json.circle, 'test');
      assert.equal(Buffer.from(m.json.signing.publicKey, 'base64').length, 32);
      assert.equal(Buffer.from(m.json.signing.secretKey, 'base64').length, 64);
      assert.equal(Buffer.from(m.json.exchange.publicKey, 'base64').length, 32);
      assert.equal(Buffer.from(m.json.exchange.secretKey, 'base64').length, 32);
      // The X25519 pair is a real pair.
      const pub = nacl.scalarMult.base(Buffer.from(m.json.exchange.secretKey, 'base64'));
      assert.equal(b64(pub), m.json.exchange.publicKey);
      assert.equal(m.keyHash, keyHashOf(m.keyPair.publicKey));
      assert.equal(m.json.directory.length, 4);
    }
  });

  test('directory.json is public only; allowlist.json lists every key hash', () => {
    const dirText = fs.readFileSync(path.join(tmp, 'ids', 'directory.json'), 'utf8');
    assert.doesNotMatch(dirText, /secret/i);
    const dir = JSON.parse(dirText);
    assert.deepEqual(dir.members.map((e) => e.keyHash), members.map((m) => m.keyHash));
    for (const [i, e] of dir.members.entries()) {
      assert.deepEqual(Object.keys(e).sort(), ['exchangePublicKey', 'keyHash', 'member', 'signingPublicKey']);
      assert.equal(e.signingPublicKey, members[i].json.signing.publicKey);
    }
    const allow = JSON.parse(fs.readFileSync(path.join(tmp, 'ids', 'allowlist.json'), 'utf8'));
    assert.deepEqual([...allow.keyHashes].sort(), members.map((m) => m.keyHash).sort());
  });

  test("import-relay reads Relay's allowed-keys-seed.json (JSON.stringify(hashes, null, 2))", () => {
    // Relay's scripts/generate-20-identities.mjs writes exactly this: a pretty-printed array.
    const seed = path.join(tmp, 'relay-seed.json');
    fs.writeFileSync(seed, JSON.stringify(members.map((m) => m.keyHash), null, 2), 'utf8');
    const out = path.join(tmp, 'relay-imported.json');
    execFileSync(CLI, ['identities', 'import-relay', seed, '--out', out], { stdio: 'pipe' });
    const allow = JSON.parse(fs.readFileSync(out, 'utf8'));
    assert.equal(allow.format, 'parley-relay-allowlist');
    assert.deepEqual([...allow.keyHashes].sort(), members.map((m) => m.keyHash).sort());
    // Relay's seed script refuses an empty seed; so does import-relay.
    fs.writeFileSync(seed, '[]');
    assert.throws(() => execFileSync(CLI, ['identities', 'import-relay', seed, '--out', path.join(tmp, 'empty.json')], { stdio: 'pipe' }));
    assert.ok(!fs.existsSync(path.join(tmp, 'empty.json')));
  });

  test('import-relay converts a seed file (array of records) to allowlist.json', () => {
    const seed = path.join(tmp, 'allowed-keys-seed.json');
    fs.writeFileSync(seed, JSON.stringify(members.map((m) => ({ keyHash: m.keyHash.toUpperCase() }))));
    const out = path.join(tmp, 'imported.json');
    execFileSync(CLI, ['identities', 'import-relay', seed, '--out', out], { stdio: 'pipe' });
    const allow = JSON.parse(fs.readFileSync(out, 'utf8'));
    assert.deepEqual([...allow.keyHashes].sort(), members.map((m) => m.keyHash).sort());
  });
});

describe('relay secure mode', () => {
  let d;
  let url;
  const [alice, bob, carol] = [0, 1, 2].map((i) => () => members[i]);
  const posted = [];

  before(async () => {
    d = await startRelay({ mode: 'secure', postRate: 10 });
    url = d.url;
  });
  after(async () => { await d?.stop(); });

  const post = (from, recipient, body, extra = {}) => {
    const target = recipient === undefined ? '/api/blobs' : `/api/blobs?recipientKeyHash=${recipient}`;
    return fetch(url + target, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', ...(from ? proof(from, 'POST', target, body) : {}), ...extra },
      body,
    });
  };
  // Ed25519 is deterministic: the same request in the same second has the same signature and
  // is refused as a replay. Clients make requests unique with a random `n` (ignored, signed).
  const nonce = () => crypto.randomBytes(8).toString('hex');
  const list = (as, box) => {
    const target = `/api/blobs?recipientKeyHash=${box}&n=${nonce()}`;
    return fetch(url + target, { headers: proof(as, 'GET', target) });
  };
  const del = (as, id) => {
    const target = `/api/blobs/${id}?n=${nonce()}`;
    return fetch(url + target, { method: 'DELETE', headers: proof(as, 'DELETE', target) });
  };

  test('health and key check are open and JSON', async () => {
    let r = await fetch(`${url}/health`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { ok: true });
    r = await fetch(`${url}/api/keys/allowed?keyHash=${alice().keyHash}`);
    assert.deepEqual(await r.json(), { allowed: true });
    r = await fetch(`${url}/api/keys/allowed?keyHash=${'ab'.repeat(32)}`);
    assert.deepEqual(await r.json(), { allowed: false });
    r = await fetch(`${url}/api/keys/allowed`);
    assert.equal(r.status, 400);
    assert.ok((await r.json()).error);
  });

  test('a 65536-byte blob is stored with an obfuscated expiry', async () => {
    const body = crypto.randomBytes(BLOB);
    const sentAt = Date.now();
    const r = await post(alice(), bob().keyHash, body);
    assert.equal(r.status, 201);
    const j = await r.json();
    assert.deepEqual(Object.keys(j).sort(), ['expiresAt', 'id']);
    assert.match(j.expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const exp = Date.parse(j.expiresAt);
    const midnight = Math.floor(sentAt / DAY) * DAY;
    assert.ok(exp >= midnight + 72 * 3600_000, 'expiry before send-day midnight + 72 h');
    assert.ok(exp <= midnight + 96 * 3600_000, 'expiry after send-day midnight + 96 h');
    assert.equal(exp % 60_000, 0, 'expiry has minute granularity (no send-time bits)');
    posted.push({ id: j.id, body, exp });
  });

  test('other sizes are refused and nothing is stored', async () => {
    for (const n of [65535, 65537, 0]) {
      const r = await post(alice(), bob().keyHash, crypto.randomBytes(n));
      assert.equal(r.status, 400, `size ${n}`);
      assert.ok((await r.json()).error);
    }
    const big = crypto.randomBytes(200 * 1024); // over the transport's max_http_body
    // Refused from its Content-Length; the server reads and drops the rest so the 413 arrives.
    const r = await post(alice(), bob().keyHash, big);
    assert.equal(r.status, 413);
    const l = await list(bob(), bob().keyHash);
    assert.equal((await l.json()).length, posted.length);
  });

  test('recipient missing, malformed or unknown', async () => {
    const body = crypto.randomBytes(BLOB);
    let r = await post(alice(), undefined, body);
    assert.equal(r.status, 400);
    assert.match((await r.json()).error, /recipientKeyHash/);
    r = await post(alice(), 'nothex', body);
    assert.equal(r.status, 400);
    r = await post(alice(), crypto.randomBytes(32).toString('hex'), body);
    assert.equal(r.status, 403);
    assert.ok((await r.json()).error);
  });

  test('proofs are required and checked (401 without saying why)', async () => {
    const body = crypto.randomBytes(BLOB);
    const target = `/api/blobs?recipientKeyHash=${bob().keyHash}`;
    const send = (headers) => fetch(url + target, {
      method: 'POST', headers: { 'Content-Type': 'application/octet-stream', ...headers }, body,
    });
    const bodies = new Set();
    const expect401 = async (headers, what) => {
      const r = await send(headers);
      assert.equal(r.status, 401, what);
      bodies.add(JSON.stringify(await r.json()));
    };
    await expect401({}, 'unsigned');
    const good = proof(alice(), 'POST', target, body);
    await expect401({ ...good, 'X-Parley-Signature': b64(crypto.randomBytes(64)) }, 'bad signature');
    await expect401(proof(alice(), 'POST', target, crypto.randomBytes(BLOB)), 'signature over another body');
    await expect401(proof(alice(), 'POST', `/api/blobs?recipientKeyHash=${carol().keyHash}`, body), 'another target');
    await expect401(proof(null, 'POST', target, body, { keyPair: nacl.sign.keyPair() }), 'key not on the allowlist');
    await expect401(proof(alice(), 'POST', target, body, { ts: Math.floor(Date.now() / 1000) - 600 }), 'stale timestamp');
    await expect401(proof(alice(), 'POST', target, body, { ts: Math.floor(Date.now() / 1000) + 600 }), 'future timestamp');
    // Replay: the first use works, the same signature again is refused.
    let r = await send(good);
    assert.equal(r.status, 201);
    posted.push({ id: (await r.json()).id, body });
    await expect401(good, 'replayed signature');
    assert.equal(bodies.size, 1, 'every 401 has the same body');
    // GET and DELETE need proofs too.
    r = await fetch(`${url}/api/blobs?recipientKeyHash=${bob().keyHash}`);
    assert.equal(r.status, 401);
    r = await fetch(`${url}/api/blobs/${posted[0].id}`, { method: 'DELETE' });
    assert.equal(r.status, 401);
  });

  test('list is sorted by expiry and has exactly {id, payload, expiresAt}', async () => {
    for (let i = 0; i < 3; ++i) {
      const body = crypto.randomBytes(BLOB);
      const r = await post(carol(), bob().keyHash, body);
      assert.equal(r.status, 201);
      const j = await r.json();
      posted.push({ id: j.id, body, exp: Date.parse(j.expiresAt) });
    }
    const r = await list(bob(), bob().keyHash);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /application\/json/);
    const arr = await r.json();
    assert.equal(arr.length, posted.length);
    for (const e of arr) {
      assert.deepEqual(Object.keys(e).sort(), ['expiresAt', 'id', 'payload']);
      const mine = posted.find((p) => p.id === e.id);
      assert.ok(mine, 'unknown id in list');
      assert.ok(Buffer.from(e.payload, 'base64').equals(mine.body), 'payload round-trips');
    }
    const exps = arr.map((e) => Date.parse(e.expiresAt));
    assert.deepEqual(exps, [...exps].sort((a, b) => a - b));
  });

  test("reading someone else's box is refused", async () => {
    const r = await list(alice(), bob().keyHash);
    assert.ok([401, 403].includes(r.status));
    assert.ok((await r.json()).error);
  });

  test('delete: only the recipient, 204 then 404', async () => {
    const victim = posted[0].id;
    let r = await del(alice(), victim); // not alice's blob: indistinguishable from absent
    assert.equal(r.status, 404);
    r = await del(bob(), victim);
    assert.equal(r.status, 204);
    r = await del(bob(), victim);
    assert.equal(r.status, 404);
    const arr = await (await list(bob(), bob().keyHash)).json();
    assert.ok(!arr.some((e) => e.id === victim));
    assert.equal(arr.length, posted.length - 1);
  });

  test('POSTs are rate limited per recipient (429)', async () => {
    const dave = members[3];
    const statuses = [];
    for (let i = 0; i < 12; ++i) statuses.push((await post(alice(), dave.keyHash, crypto.randomBytes(BLOB))).status);
    assert.deepEqual(statuses.slice(0, 10), Array(10).fill(201));
    assert.equal(statuses[10], 429);
    // Another recipient is unaffected.
    assert.equal((await post(alice(), carol().keyHash, crypto.randomBytes(BLOB))).status, 201);
  });

  test('logs carry no key hashes, ids or signatures', async () => {
    const logs = d.logs();
    assert.match(logs, /allowlist loaded \(4 keys\)/);
    for (const m of members) {
      assert.ok(!logs.includes(m.keyHash), 'key hash in logs');
      assert.ok(!logs.includes(m.json.signing.publicKey), 'public key in logs');
    }
    for (const p of posted) assert.ok(!logs.includes(p.id), 'blob id in logs');
  });

  test('allowlist changes are picked up (file polled)', async () => {
    const file = path.join(tmp, 'allowlist-secure.json');
    const allow = JSON.parse(fs.readFileSync(file, 'utf8'));
    allow.keyHashes = allow.keyHashes.filter((h) => h !== carol().keyHash);
    fs.writeFileSync(file, JSON.stringify(allow));
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await fetch(`${url}/api/keys/allowed?keyHash=${carol().keyHash}`);
      if (!(await r.json()).allowed) break;
      assert.ok(Date.now() < deadline, 'allowlist change not noticed');
      await new Promise((res) => setTimeout(res, 200));
    }
    const r = await post(carol(), bob().keyHash, crypto.randomBytes(BLOB));
    assert.equal(r.status, 401);
  });
});

describe('relay compat mode', () => {
  let d;
  let url;
  before(async () => {
    d = await startRelay({ mode: 'compat', webOrigin: WEB_ORIGIN });
    url = d.url;
  });
  after(async () => { await d?.stop(); });

  test("Relay's unauthenticated API works, with CORS for web_origin", async () => {
    const box = members[1].keyHash;
    const body = crypto.randomBytes(BLOB);
    let r = await fetch(`${url}/api/blobs?recipientKeyHash=${box}`, {
      method: 'POST', headers: { 'Content-Type': 'application/octet-stream', Origin: WEB_ORIGIN }, body,
    });
    assert.equal(r.status, 201);
    assert.equal(r.headers.get('access-control-allow-origin'), WEB_ORIGIN);
    const { id } = await r.json();

    r = await fetch(`${url}/api/blobs?recipientKeyHash=${box}`, { headers: { Origin: WEB_ORIGIN } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), WEB_ORIGIN);
    const arr = await r.json();
    assert.equal(arr.length, 1);
    assert.ok(Buffer.from(arr[0].payload, 'base64').equals(body));

    r = await fetch(`${url}/api/blobs?recipientKeyHash=${box}`, { headers: { Origin: 'http://evil.example' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), null);

    r = await fetch(`${url}/api/blobs/${id}`, { method: 'DELETE', headers: { Origin: WEB_ORIGIN } });
    assert.equal(r.status, 204);
    // Relay deletes with deleteMany: absent ids are 204 too (its client throws on anything else).
    r = await fetch(`${url}/api/blobs/${id}?recipientKeyHash=${box}`, { method: 'DELETE' });
    assert.equal(r.status, 204);

    // Size and recipient rules still hold.
    r = await fetch(`${url}/api/blobs?recipientKeyHash=${box}`, {
      method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: crypto.randomBytes(100),
    });
    assert.equal(r.status, 400);
    r = await fetch(`${url}/api/blobs?recipientKeyHash=${'cd'.repeat(32)}`, {
      method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body,
    });
    assert.equal(r.status, 403);
  });

  // The shapes Relay's server (relay-server/src/routes/blob.js, keys.js, index.js) gives its
  // client, status by status, as its unmodified relay-web/src/lib/api.ts calls them.
  test("compat answers in Relay's shapes (blob.js, keys.js)", async () => {
    const box = members[2].keyHash;
    const octet = { 'Content-Type': 'application/octet-stream' };
    const isJsonError = async (r, status) => {
      assert.equal(r.status, status);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      const j = await r.json();
      assert.deepEqual(Object.keys(j), ['error']);
      assert.equal(typeof j.error, 'string');
    };
    // POST: missing recipient 400; wrong size 400; not octet-stream 400 (express.raw leaves the
    // body empty); unknown recipient 403; oversized 413.
    await isJsonError(await fetch(`${url}/api/blobs`, { method: 'POST', headers: octet, body: crypto.randomBytes(BLOB) }), 400);
    await isJsonError(await fetch(`${url}/api/blobs?recipientKeyHash=${box}`, { method: 'POST', headers: octet, body: crypto.randomBytes(BLOB - 1) }), 400);
    await isJsonError(await fetch(`${url}/api/blobs?recipientKeyHash=${box}`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x'.repeat(BLOB) }), 400);
    await isJsonError(await fetch(`${url}/api/blobs?recipientKeyHash=${'ef'.repeat(32)}`, { method: 'POST', headers: octet, body: crypto.randomBytes(BLOB) }), 403);
    assert.equal((await fetch(`${url}/api/blobs?recipientKeyHash=${box}`, { method: 'POST', headers: octet, body: crypto.randomBytes(200 * 1024) })).status, 413);
    // 201 {id, expiresAt} with expiresAt = send day's UTC midnight + 72 h + 0..1440 min.
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const t = Date.now();
      const r = await fetch(`${url}/api/blobs?recipientKeyHash=${encodeURIComponent(box)}`, { method: 'POST', headers: octet, body: crypto.randomBytes(BLOB) });
      assert.equal(r.status, 201);
      const j = await r.json();
      assert.deepEqual(Object.keys(j).sort(), ['expiresAt', 'id']);
      assert.match(j.expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z$/);
      const midnight = Math.floor(t / DAY) * DAY;
      const e = Date.parse(j.expiresAt);
      assert.ok(e >= midnight + 3 * DAY && e <= midnight + 4 * DAY, j.expiresAt);
      ids.push(j.id);
    }
    // GET: 400 without recipient, 403 unknown, else [{id, payload, expiresAt}] by expiry.
    await isJsonError(await fetch(`${url}/api/blobs`), 400);
    await isJsonError(await fetch(`${url}/api/blobs?recipientKeyHash=${'ef'.repeat(32)}`), 403);
    const list = await (await fetch(`${url}/api/blobs?recipientKeyHash=${box}`)).json();
    assert.equal(list.length, 3);
    for (const it of list) assert.deepEqual(Object.keys(it).sort(), ['expiresAt', 'id', 'payload']);
    const sorted = [...list].sort((a, b) => Date.parse(a.expiresAt) - Date.parse(b.expiresAt));
    assert.deepEqual(list.map((b) => b.expiresAt), sorted.map((b) => b.expiresAt));
    assert.deepEqual(list.map((b) => b.id).sort(), [...ids].sort());
    // DELETE as api.ts sends it (with ?recipientKeyHash=): 204, empty body; again: 204.
    for (const id of ids) {
      for (let k = 0; k < 2; k++) {
        const r = await fetch(`${url}/api/blobs/${id}?recipientKeyHash=${encodeURIComponent(box)}`, { method: 'DELETE' });
        assert.equal(r.status, 204);
        assert.equal(await r.text(), '');
      }
    }
    assert.deepEqual(await (await fetch(`${url}/api/blobs?recipientKeyHash=${box}`)).json(), []);
    // keys.js and index.js.
    assert.deepEqual(await (await fetch(`${url}/api/keys/allowed?keyHash=${box}`)).json(), { allowed: true });
    assert.deepEqual(await (await fetch(`${url}/api/keys/allowed?keyHash=${'ef'.repeat(32)}`)).json(), { allowed: false });
    await isJsonError(await fetch(`${url}/api/keys/allowed`), 400);
    assert.deepEqual(await (await fetch(`${url}/health`)).json(), { ok: true });
  });

  test('CORS preflight is answered for web_origin', async () => {
    const r = await fetch(`${url}/api/blobs`, {
      method: 'OPTIONS',
      headers: { Origin: WEB_ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get('access-control-allow-origin'), WEB_ORIGIN);
    assert.match(r.headers.get('access-control-allow-methods'), /POST/);
    assert.match(r.headers.get('access-control-allow-methods'), /DELETE/);
    assert.match(r.headers.get('access-control-allow-headers'), /Content-Type/i);
    const other = await fetch(`${url}/api/blobs`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
  });
});
