// The relay web client (plugins/transport-ws/web/relay) in real Chromium against a real parleyd
// with the relay plugin in secure mode. `parley identities generate` makes a circle of three;
// A's page sends a message and a ~150 KiB file to B; node (tweetnacl proofs + the client's own
// packet.js) checks what the server holds and that C can neither list, delete nor decrypt B's
// blobs; B's page decrypts both, the downloaded file is byte-identical, and B's box is empty
// afterwards. Then a live message while B's page is open. Nothing secret or plaintext may
// appear in any request (URL, header, body), WebSocket frame or the parleyd log; no CSP or
// Trusted Types violation.
//
// Env: PARLEYD, PARLEY_CLI, PARLEY_RELAY_WEB_PROFILE, PARLEY_RELAY_WEB_ROOT, ARTIFACTS_DIR,
// PARLEY_RELAY_WEB_PROTOCOL (relay|raw, default relay), PARLEY_REQUIRE_BROWSER=1 (ctest).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nacl from 'tweetnacl';

import {
  launchBrowser, haveChromium, chromiumPath, startParleyd, freePort, writeProfile, saveScreenshot, artifactsDir,
  BROWSER_TESTS_DIR,
} from './lib/harness.mjs';
import { BLOB_SIZE, CIPHERTEXT_MAX, parsePacket, openPacket } from '../../plugins/transport-ws/web/relay/packet.js';
import { importExchange, peerBaseKey } from '../../plugins/transport-ws/web/relay/crypto.js';

const WEB_ROOT = process.env.PARLEY_RELAY_WEB_ROOT
  || path.resolve(BROWSER_TESTS_DIR, '..', '..', 'plugins', 'transport-ws', 'web', 'relay');
const PROFILE = process.env.PARLEY_RELAY_WEB_PROFILE || path.join(BROWSER_TESTS_DIR, 'profiles', 'relay-web.yaml.in');
const PROTOCOL = process.env.PARLEY_RELAY_WEB_PROTOCOL || 'relay';
const CLI = process.env.PARLEY_CLI;
const skip = !haveChromium() ? `no Chromium at ${chromiumPath()} (set CHROMIUM)`
  : !(process.env.PARLEYD && CLI) ? 'PARLEYD and PARLEY_CLI not set'
    : false;
// Under ctest a missing browser or server is a failure, never a silent skip.
if (skip && process.env.PARLEY_REQUIRE_BROWSER === '1') throw new Error(`cannot run: ${skip}`);

const T = 90_000;
const nonce = crypto.randomBytes(4).toString('hex');
const TEXT = {
  a1: `hello B, from A ${nonce} — ünïcödé ✓`,
  live: `live message ${nonce}\nsecond line`,
  nacl: `via tweetnacl ${nonce}`,
};
const FILE_NAME = `report-${nonce}.bin`;
const FILE_BYTES = crypto.randomBytes(150 * 1024);

const b64 = (u8) => Buffer.from(u8).toString('base64');
const sha256hex = (d) => crypto.createHash('sha256').update(d).digest('hex');

describe(`relay web client (protocol ${PROTOCOL})`, { skip }, () => {
  let tmp;
  let server;
  let browser;
  let ids; // [{file, json, keyPair}]
  const pages = new Map();
  const requests = []; // {label, method, url, headers, body: Buffer|null}
  const frames = []; // {label, dir, payload}
  const problems = [];

  before(async () => {
    for (const f of fs.readdirSync(artifactsDir())) if (f.startsWith('FAILED-relay-web')) fs.rmSync(path.join(artifactsDir(), f));
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-relay-web-'));
    execFileSync(CLI, ['identities', 'generate', '--count', '3', '--out', path.join(tmp, 'ids'), '--circle', `web-${nonce}`], { stdio: 'pipe' });
    ids = [1, 2, 3].map((i) => {
      const file = path.join(tmp, 'ids', `identity-0${i}.json`);
      const json = JSON.parse(fs.readFileSync(file, 'utf8'));
      return { file, json, keyPair: nacl.sign.keyPair.fromSecretKey(Buffer.from(json.signing.secretKey, 'base64')) };
    });
    const port = await freePort();
    const stateDir = await fsp.mkdtemp(path.join(tmp, 'state-'));
    const profile = await writeProfile(PROFILE, {
      port, stateDir, dir: stateDir,
      vars: { ALLOWLIST: path.join(tmp, 'ids', 'allowlist.json'), WEB_ROOT, PROTOCOL },
    });
    server = await startParleyd({ profile, port, logFile: path.join(artifactsDir(), 'parleyd-relay-web.log') });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
  });

  const [A, B, C] = [0, 1, 2].map((i) => () => ids[i]);

  async function newPage(label) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 760 }, acceptDownloads: true });
    const page = await context.newPage();
    page.on('request', (req) => requests.push({
      label, method: req.method(), url: req.url(), headers: req.headers(), body: req.postDataBuffer(),
    }));
    page.on('websocket', (ws) => {
      ws.on('framesent', ({ payload }) => frames.push({ label, dir: 'sent', payload: String(payload) }));
      ws.on('framereceived', ({ payload }) => frames.push({ label, dir: 'recv', payload: String(payload) }));
    });
    page.on('console', (msg) => {
      if (/Content.Security.Policy|Trusted ?Type|Refused to/i.test(msg.text())) problems.push(`${label}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`${label}: pageerror ${err.message}`));
    pages.set(label, page);
    return page;
  }

  const step = (name, fn) => it(name, { timeout: T }, async () => {
    try {
      await fn();
    } catch (err) {
      for (const [label, page] of pages) await saveScreenshot(page, `FAILED-relay-web-${name.slice(0, 30)}-${label}`).catch(() => {});
      throw err;
    }
  });

  // The relay dialect serves the page at `/`; other dialects only as a static /index.html.
  const PAGE = PROTOCOL === 'relay' ? '/' : '/index.html';

  async function openWithIdentity(label, member) {
    const page = await newPage(label);
    await page.goto(`${server.url}${PAGE}`);
    await page.waitForSelector('body[data-state="locked"]', { timeout: 15_000 });
    await page.setInputFiles('#identity-file', member.file);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 30_000 });
    // Chromium has WebCrypto Ed25519/X25519: the tweetnacl fallback must not be in use.
    assert.equal(await page.getAttribute('body', 'data-crypto'), 'webcrypto');
    return page;
  }

  // A signed blob API request from node, as the client signs them (plugins/relay/README.md).
  async function api(member, method, pathname, params = {}) {
    const q = new URLSearchParams({ ...params, n: crypto.randomBytes(8).toString('hex') });
    const target = `${pathname}?${q}`;
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = nacl.sign.detached(Buffer.from(`${method}\n${target}\n${ts}\n${sha256hex(Buffer.alloc(0))}`), member.keyPair.secretKey);
    const res = await fetch(server.url + target, {
      method,
      headers: { 'X-Parley-Key': b64(member.keyPair.publicKey), 'X-Parley-Timestamp': ts, 'X-Parley-Signature': b64(sig) },
    });
    return { status: res.status, json: res.status === 200 ? await res.json() : null };
  }

  const exchangeOf = (m) => importExchange(Buffer.from(m.json.exchange.secretKey, 'base64'), Buffer.from(m.json.exchange.publicKey, 'base64'));
  const rawKey = (b) => new Uint8Array(Buffer.from(b, 'base64'));

  let heldByServer = [];
  let outsider = null; // identity file JSON of a circle the server does not know

  step('a wrong file is refused with a message, and nothing is requested with it', async () => {
    const page = await newPage('bad');
    await page.goto(`${server.url}${PAGE}`);
    await page.waitForSelector('body[data-state="locked"]');
    await page.setInputFiles('#identity-file', path.join(tmp, 'ids', 'directory.json'));
    await page.waitForSelector('#load-error:not([hidden])');
    assert.match(await page.textContent('#load-error'), /not a parley relay identity file/);
    assert.equal(await page.getAttribute('body', 'data-state'), 'locked');
    await page.context().close();
    pages.delete('bad');
  });

  step('A loads its identity, sees the directory, sends a message and a 150 KiB file to B', async () => {
    const page = await openWithIdentity('A', A());
    const members = await page.$$eval('#directory .member', (els) => els.map((e) => e.dataset.keyHash));
    assert.deepEqual(members.sort(), [B().json.keyHash, C().json.keyHash].sort());
    await page.click(`#directory .member[data-key-hash="${B().json.keyHash}"]`);
    await page.fill('#composer', TEXT.a1);
    await page.press('#composer', 'Enter');
    await page.waitForSelector('#messages .msg[data-dir="out"][data-kind="text"]');
    assert.equal(await page.textContent('#messages .msg[data-dir="out"] .text'), TEXT.a1);
    await page.setInputFiles('#file-input', { name: FILE_NAME, mimeType: 'application/octet-stream', buffer: FILE_BYTES });
    await page.waitForSelector('#messages .msg[data-dir="out"][data-kind="file"]', { timeout: 30_000 });
    assert.match(await page.textContent('#progress'), /Sent .* in \d+ blobs/);
    assert.equal(await page.isVisible('#error'), false);
  });

  step('the server holds only uniform 64 KiB ciphertext blobs for B', async () => {
    const list = await api(B(), 'GET', '/api/blobs', { recipientKeyHash: B().json.keyHash });
    assert.equal(list.status, 200);
    heldByServer = list.json;
    // 1 blob for the text, ceil(base64(150 KiB) + JSON / 48 000) for the file.
    assert.ok(heldByServer.length >= 5 && heldByServer.length <= 7, `blob count ${heldByServer.length}`);
    const senderB64 = A().json.exchange.publicKey;
    const ids = new Set();
    for (const item of heldByServer) {
      assert.deepEqual(Object.keys(item).sort(), ['expiresAt', 'id', 'payload']);
      const bytes = new Uint8Array(Buffer.from(item.payload, 'base64'));
      assert.equal(bytes.length, BLOB_SIZE);
      const p = parsePacket(bytes);
      assert.equal(p.sender, senderB64);
      assert.equal(p.ciphertext.length, CIPHERTEXT_MAX, 'every ciphertext fills its blob');
      ids.add(p.messageId);
      assert.equal(Buffer.from(bytes).includes(Buffer.from(nonce)), false);
      assert.equal(Buffer.from(bytes).includes(FILE_BYTES.subarray(0, 32)), false);
    }
    assert.equal(ids.size, 2, 'two messages');
    // B's key opens them (the format is what packet.js says), C's does not.
    const bBase = await peerBaseKey(await exchangeOf(B()), rawKey(senderB64));
    const cBase = await peerBaseKey(await exchangeOf(C()), rawKey(senderB64));
    const first = parsePacket(new Uint8Array(Buffer.from(heldByServer[0].payload, 'base64')));
    const chunk = await openPacket(first, bBase);
    assert.equal(chunk.messageId, first.messageId);
    assert.deepEqual(Object.keys(chunk).sort(), ['chunkIndex', 'fragmentBase64', 'messageId', 'totalChunks'], 'Relay\'s chunk fields only');
    await assert.rejects(openPacket(first, cBase));
    // The layout read independently, as Relay's parseBlobPacket does (V1: version, u16 BE
    // sender length, sender, 16-byte message id, u16 BE ciphertext length, ciphertext).
    const raw = Buffer.from(heldByServer[0].payload, 'base64');
    assert.equal(raw[0], 1);
    const senderLen = raw.readUInt16BE(1);
    assert.equal(raw.subarray(3, 3 + senderLen).toString('ascii'), senderB64);
    const idHex = raw.subarray(3 + senderLen, 19 + senderLen).toString('hex');
    assert.equal(idHex, first.messageId.replace(/-/g, ''));
    assert.equal(raw.readUInt16BE(19 + senderLen), CIPHERTEXT_MAX);
    assert.equal(21 + senderLen + CIPHERTEXT_MAX, BLOB_SIZE);
  });

  step('C cannot list, delete or read B\'s blobs', async () => {
    const list = await api(C(), 'GET', '/api/blobs', { recipientKeyHash: B().json.keyHash });
    assert.equal(list.status, 403);
    const del = await api(C(), 'DELETE', `/api/blobs/${encodeURIComponent(heldByServer[0].id)}`);
    assert.equal(del.status, 404);
    const own = await api(C(), 'GET', '/api/blobs', { recipientKeyHash: C().json.keyHash });
    assert.equal(own.status, 200);
    assert.deepEqual(own.json, []);
    const still = await api(B(), 'GET', '/api/blobs', { recipientKeyHash: B().json.keyHash });
    assert.equal(still.json.length, heldByServer.length, 'C\'s DELETE removed nothing');
  });

  step('B loads its identity, decrypts the message and the file (bytes equal), and the box is emptied', async () => {
    const page = await openWithIdentity('B', B());
    const member = `#directory .member[data-key-hash="${A().json.keyHash}"]`;
    await page.waitForSelector(`${member} .unread`);
    assert.equal(await page.textContent(`${member} .unread`), '2');
    await page.click(member);
    await page.waitForSelector('#messages .msg[data-dir="in"][data-kind="file"]');
    const texts = await page.$$eval('#messages .msg[data-dir="in"] .text', (els) => els.map((e) => e.textContent));
    assert.deepEqual(texts, [TEXT.a1]);
    const froms = await page.$$eval('#messages .msg[data-dir="in"]', (els) => els.map((e) => e.dataset.from));
    assert.deepEqual(froms, [A().json.keyHash, A().json.keyHash]);
    const link = '#messages .msg[data-kind="file"] a.file';
    assert.equal(await page.getAttribute(link, 'download'), FILE_NAME);
    assert.equal(await page.getAttribute(link, 'data-size'), String(FILE_BYTES.length));
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(link)]);
    assert.equal(download.suggestedFilename(), FILE_NAME);
    const got = await fsp.readFile(await download.path());
    assert.equal(got.length, FILE_BYTES.length);
    assert.ok(got.equals(FILE_BYTES), 'downloaded bytes equal the sent file');
    // Deleted after reading.
    const deadline = Date.now() + 10_000;
    let left;
    do {
      left = (await api(B(), 'GET', '/api/blobs', { recipientKeyHash: B().json.keyHash })).json;
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    } while (Date.now() < deadline);
    assert.deepEqual(left, []);
  });

  step('a message sent while B\'s page is open arrives without a reload', async () => {
    const a = pages.get('A');
    const b = pages.get('B');
    const live = await b.getAttribute('body', 'data-live');
    if (PROTOCOL === 'relay') assert.equal(live, 'ws', 'authenticated WebSocket with refresh notifications');
    const t0 = Date.now();
    await a.fill('#composer', TEXT.live);
    await a.click('#send');
    await b.waitForFunction((t) => [...document.querySelectorAll('#messages .msg[data-dir="in"] .text')].some((e) => e.textContent === t),
      TEXT.live, { timeout: 20_000 });
    const ms = Date.now() - t0;
    // With `refresh` the read starts at once; polling alone waits up to its 5 s period.
    // With notifications the safety poll runs every 60 s: a fast delivery is the `refresh`.
    if (live === 'ws') {
      assert.ok(ms < 4000, `delivered in ${ms} ms`);
      assert.ok(frames.some((f) => f.label === 'B' && f.dir === 'recv' && f.payload === '{"type":"refresh"}'), 'B got refresh');
      assert.ok(frames.some((f) => f.label === 'B' && f.dir === 'sent' && f.payload === '{"type":"join_blob"}'));
    }
    console.log(`# live delivery (${live}): ${ms} ms`);
    await saveScreenshot(b, 'relay-web-B');
    await saveScreenshot(a, 'relay-web-A');
  });

  step('without WebCrypto Ed25519/X25519 the tweetnacl fallback interoperates (C -> B)', async () => {
    const page = await newPage('C-nacl');
    // Simulates a browser whose WebCrypto lacks the curves (injected by CDP, not subject to CSP).
    await page.addInitScript(() => {
      const curve = (a) => /^(Ed25519|X25519)$/i.test(typeof a === 'string' ? a : a?.name ?? '');
      const s = crypto.subtle;
      for (const fn of ['generateKey', 'importKey', 'sign', 'verify', 'deriveBits', 'deriveKey']) {
        const orig = s[fn].bind(s);
        const algIndex = fn === 'importKey' ? 2 : 0;
        s[fn] = (...args) => (curve(args[algIndex]) ? Promise.reject(new DOMException('no', 'NotSupportedError')) : orig(...args));
      }
    });
    await page.goto(`${server.url}${PAGE}`);
    await page.waitForSelector('body[data-state="locked"]');
    await page.setInputFiles('#identity-file', C().file);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 30_000 });
    assert.equal(await page.getAttribute('body', 'data-crypto'), 'tweetnacl');
    await page.click(`#directory .member[data-key-hash="${B().json.keyHash}"]`);
    await page.fill('#composer', TEXT.nacl);
    await page.press('#composer', 'Enter');
    await page.waitForSelector('#messages .msg[data-dir="out"][data-kind="text"]');
    const b = pages.get('B');
    const member = `#directory .member[data-key-hash="${C().json.keyHash}"]`;
    await b.waitForSelector(`${member} .unread`, { timeout: 20_000 });
    await b.click(member);
    await b.waitForFunction((t) => [...document.querySelectorAll('#messages .msg[data-dir="in"] .text')].some((e) => e.textContent === t),
      TEXT.nacl, { timeout: 10_000 });
  });

  step('an identity from another circle is refused by the server, and the page says so', async () => {
    execFileSync(CLI, ['identities', 'generate', '--count', '1', '--out', path.join(tmp, 'other'), '--circle', 'other'], { stdio: 'pipe' });
    outsider = JSON.parse(fs.readFileSync(path.join(tmp, 'other', 'identity-01.json'), 'utf8'));
    const page = await newPage('X');
    await page.goto(`${server.url}${PAGE}`);
    await page.waitForSelector('body[data-state="locked"]');
    await page.setInputFiles('#identity-file', path.join(tmp, 'other', 'identity-01.json'));
    await page.waitForSelector('body[data-state="ready"]', { timeout: 30_000 });
    await page.waitForSelector('#error:not([hidden])');
    assert.match(await page.textContent('#error'), /refused this identity/);
    assert.equal(await page.getAttribute('#status', 'data-state'), 'offline');
    if (PROTOCOL === 'relay') {
      const deadline = Date.now() + 10_000;
      while (!frames.some((f) => f.label === 'X' && f.payload.includes('authentication failed')) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(frames.some((f) => f.label === 'X' && f.payload === '{"type":"error","error":"authentication failed"}'), 'WebSocket auth refused');
      assert.equal(await page.getAttribute('body', 'data-live'), 'poll');
    }
    await page.context().close();
    pages.delete('X');
  });

  step('no plaintext, key or identity secret in any request, frame or log; no CSP violation', async () => {
    const secrets = [...ids.map((m) => m.json), outsider].filter(Boolean).flatMap((j) => [j.signing.secretKey, j.exchange.secretKey,
      Buffer.from(j.signing.secretKey, 'base64').subarray(0, 32).toString('base64url')]);
    const plain = [...Object.values(TEXT), nonce, FILE_NAME];
    const fileProbe = FILE_BYTES.subarray(1000, 1032);
    assert.ok(requests.some((r) => r.method === 'POST' && r.url.includes('/api/blobs')), 'the pages did post blobs');
    for (const r of requests) {
      const head = `${r.method} ${r.url}\n${JSON.stringify(r.headers)}`;
      for (const s of [...secrets, ...plain]) assert.equal(head.includes(s), false, `${r.label} ${r.method} ${r.url} carries a secret or plaintext`);
      if (r.body) {
        for (const s of [...secrets, ...plain]) assert.equal(r.body.includes(Buffer.from(s)), false, `${r.label} request body`);
        assert.equal(r.body.includes(fileProbe), false);
        if (r.url.includes('/api/blobs')) assert.equal(r.body.length, BLOB_SIZE);
      }
      if (r.url.includes('/api/blobs')) assert.ok(r.headers['x-parley-signature'], 'blob API requests are signed');
    }
    for (const f of frames) for (const s of [...secrets, ...plain]) assert.equal(f.payload.includes(s), false, `${f.label} ws frame`);
    const log = server.logs();
    assert.ok(log.length > 0);
    for (const s of [...secrets, ...plain, ...ids.map((m) => m.json.keyHash), ...ids.map((m) => m.json.signing.publicKey)]) {
      assert.equal(log.includes(s), false, 'parleyd log carries a secret, plaintext, key or key hash');
    }
    assert.deepEqual(problems, []);
  });
});
