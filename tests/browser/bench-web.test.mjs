// End-to-end test of parley's bench web client (plugins/transport-ws/web/bench) in real
// Chromium against a real parleyd speaking the bench (BenchTalks) dialect.
//
// Server under test: $PARLEYD with a copy of $PARLEY_BENCH_PROFILE (@PORT@, @STATE@ and the
// other @KEY@s filled in here). Browser: $CHROMIUM or /usr/bin/chromium. Screenshots and the
// server log: $ARTIFACTS_DIR or ./artifacts. Under ctest PARLEY_REQUIRE_BROWSER=1 turns a
// missing browser or server into a failure instead of a skip.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

import {
  launchBrowser, haveChromium, chromiumPath, startParleyd, freePort, writeProfile, saveScreenshot, artifactsDir,
} from './lib/harness.mjs';

const PROFILE = process.env.PARLEY_BENCH_PROFILE;
const skip = !haveChromium()
  ? `no Chromium at ${chromiumPath()} (set CHROMIUM)`
  : !(process.env.PARLEYD && PROFILE)
    ? 'PARLEYD and PARLEY_BENCH_PROFILE not set'
    : false;
if (skip && process.env.PARLEY_REQUIRE_BROWSER === '1') throw new Error(`cannot run: ${skip}`);

const T = 90_000;
const MAX_FILE_SIZE = 65536; // the test profile's image limit (bench.max_file_size: 64K)
const nonce = crypto.randomBytes(4).toString('hex');
// Every plaintext typed here; none may reach the server (frames, URLs, request bodies, log).
const TEXT = {
  a1: `hello from Alice ${nonce}`,
  b1: `reply from Bob ${nonce}\nsecond line & <b>not bold</b>`,
  xss: `<img src=x onerror="window.__pwned=1"> ${nonce}`,
  c1: `Carol was here ${nonce}`,
};
const NAMES = { A: `Alice-${nonce}`, B: `Bob-${nonce}`, C: `Carol-${nonce}`, E: `Erin-${nonce}`, F: `Frank-${nonce}`, G: `Gus-${nonce}`, P: `Pat-${nonce}` };
const CLIENT_TYPES = new Set(['join', 'message', 'image', 'delete', 'make_public', 'request_pair', 'claim_pair', 'ban_client']);
const ADMIN_TYPES = new Set(['delete', 'make_public', 'request_pair', 'ban_client']);
const HEX64 = /^[0-9a-f]{64}$/;
const ROOM_LINK = /^\/room\.html\?room=([0-9a-f]{32})#key=([A-Za-z0-9_-]{43})(?:&admin=([A-Za-z0-9_-]{43}))?$/;

// ------------------------------------------------------------------ PNGs made here

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (buf) => {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
function chunk(type, body) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const tb = Buffer.concat([Buffer.from(type, 'ascii'), body]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(tb));
  return Buffer.concat([len, tb, crc]);
}
// An 8-bit RGB PNG; pixel(x, y) -> [r, g, b].
function makePng(width, height, pixel, level = 9) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set(pixel(x, y), y * (width * 3 + 1) + 1 + x * 3);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw, { level })), chunk('IEND', Buffer.alloc(0)),
  ]);
}
const SMALL = { w: 24, h: 16, pixel: (x, y) => [x * 10, y * 15, (x * y) % 256] };
const SMALL_PNG = makePng(SMALL.w, SMALL.h, SMALL.pixel);
// Noise does not compress: comfortably above the 64K limit once encrypted.
const noise = crypto.randomBytes(200 * 170 * 3);
const BIG_PNG = makePng(200, 170, (x, y) => [...noise.subarray((y * 200 + x) * 3, (y * 200 + x) * 3 + 3)], 0);

// ------------------------------------------------------------------------------ test

describe('bench web client (parleyd, Chromium)', { skip }, () => {
  let server;
  let browser;
  let stateDir;
  let url;
  const pages = new Map();   // label -> page
  const frames = [];         // {label, dir, payload}
  const requests = [];       // {label, method, url, body}
  const problems = [];       // CSP / Trusted Types violations, page errors
  const secrets = new Set(); // keys, invite keys, image bytes: never to the server
  const adminSecrets = new Set(); // admin tokens (#admin= form): only in admin actions
  const r1 = {};             // the first bench
  const r2 = {};             // the bench that empties and comes back

  before(async () => {
    for (const f of fs.readdirSync(artifactsDir())) if (f.startsWith('FAILED-bench')) fs.rmSync(path.join(artifactsDir(), f));
    stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-bench-web-'));
    const port = await freePort();
    const profile = await writeProfile(PROFILE, {
      port, stateDir,
      vars: { ADMIN_CLAIM: 'first', ENV_COMPAT: 'false', MAX_FILE_SIZE: '64K', INVITE_TTL: '1h', RATE: '100', BURST: '200' },
    });
    server = await startParleyd({ profile, port, logFile: path.join(artifactsDir(), 'parleyd-bench-web.log') });
    url = server.url;
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (stateDir) await fsp.rm(stateDir, { recursive: true, force: true });
  });

  // ---------------------------------------------------------------- helpers

  async function newPage(label, { dark = false } = {}) {
    const context = await browser.newContext({ viewport: { width: 1000, height: 720 }, colorScheme: dark ? 'dark' : 'light' });
    const page = await context.newPage();
    // Violations are reported to the page whatever the console says.
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    page.on('websocket', (ws) => {
      ws.on('framesent', ({ payload }) => frames.push({ label, dir: 'sent', payload: String(payload) }));
      ws.on('framereceived', ({ payload }) => frames.push({ label, dir: 'recv', payload: String(payload) }));
    });
    page.on('request', (req) => requests.push({ label, method: req.method(), url: req.url(), body: req.postData() ?? '' }));
    page.on('console', (msg) => {
      if (/Content.Security.Policy|CSP violation|Trusted ?Type|Refused to/i.test(msg.text())) problems.push(`${label}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`${label}: pageerror ${err.message}`));
    page.on('dialog', (d) => { problems.push(`${label}: unexpected native dialog ${d.type()}`); d.dismiss(); });
    pages.set(label, page);
    return page;
  }

  async function closePage(label) {
    const page = pages.get(label);
    pages.delete(label);
    await page.context().close();
  }

  const step = (name, fn) => it(name, { timeout: T }, async () => {
    try {
      await fn();
    } catch (err) {
      for (const [label, page] of pages) await saveScreenshot(page, `FAILED-bench-${name.slice(0, 40)}-${label}`).catch(() => {});
      throw err;
    }
  });

  const waitState = (page, state, timeout = 15_000) => page.waitForSelector(`body[data-state="${state}"]`, { timeout, state: 'attached' });
  const waitMembers = (page, n) =>
    page.waitForFunction((k) => document.getElementById('member-count').dataset.count === String(k), n, { timeout: 10_000 });
  const waitForText = (page, text) =>
    page.waitForFunction((t) => [...document.querySelectorAll('#messages .msg .text')].some((e) => e.textContent === t), text, { timeout: 10_000 });
  const waitForSys = (page, re) =>
    page.waitForFunction((src) => [...document.querySelectorAll('#messages .sys')].some((e) => new RegExp(src).test(e.textContent)), re.source, { timeout: 10_000 });
  const imageCount = (page) => page.locator('#messages img[data-testid="msg-image"]').count();
  const sentBy = (label) => frames.filter((f) => f.label === label && f.dir === 'sent').map((f) => JSON.parse(f.payload));

  async function join(page, name) {
    await waitState(page, 'join');
    await page.fill('#name-input', name);
    await page.click('#join-button');
    await waitState(page, 'online');
  }

  async function adminMenu(page, item) {
    await page.click('#admin-menu-button');
    await page.click(`#${item}`);
  }

  async function confirm(page) {
    await page.waitForSelector('#confirm-dialog[open]');
    await page.click('#confirm-ok');
  }

  async function linkFromDialog(page) {
    await page.waitForSelector('#link-dialog[open]');
    const link = await page.inputValue('#link-field');
    await page.click('#link-close');
    return link;
  }

  // Pixels of the newest shown image, read back through a canvas (a fetch of the blob: URL
  // would itself be a CSP violation under connect-src).
  const lastImagePixels = (page) => page.evaluate(async () => {
    const imgs = document.querySelectorAll('#messages img[data-testid="msg-image"]');
    const img = imgs[imgs.length - 1];
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    return { w: c.width, h: c.height, data: Array.from(g.getImageData(0, 0, c.width, c.height).data) };
  });

  async function health() {
    return (await fetch(`${url}/health`)).json();
  }

  function trackRoomLink(link) {
    const u = new URL(link);
    const m = ROOM_LINK.exec(u.pathname + u.search + u.hash);
    assert.ok(m, `not a BenchTalks room link: ${link}`);
    const [, roomId, key, admin] = m;
    secrets.add(key);
    secrets.add(Buffer.from(key, 'base64url').toString('base64'));
    if (admin) adminSecrets.add(admin);
    return { roomId, key, admin: admin ?? null };
  }

  // ------------------------------------------------------------------ tests

  step('the start page creates a bench; its creator joins as admin', async () => {
    const a = await newPage('A');
    const res = await a.goto(`${url}/`);
    assert.equal(res.status(), 200);
    const csp = res.headers()['content-security-policy'] ?? '';
    for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:", "require-trusted-types-for 'script'"]) {
      assert.ok(csp.includes(d), `CSP lacks ${d}: ${csp}`);
    }
    await waitState(a, 'home');
    await saveScreenshot(a, 'bench-01-home');
    assert.equal(requests.filter((r) => r.label === 'A' && !r.url.startsWith(url)).length, 0, 'nothing from other origins');

    await a.click('#create-bench');
    await waitState(a, 'join');
    Object.assign(r1, trackRoomLink(a.url()));
    assert.ok(r1.admin, 'the creator\'s link carries the admin token');
    assert.equal(frames.filter((f) => f.label === 'A').length, 0, 'no socket before the name is given');
    await saveScreenshot(a, 'bench-02-join');
    await join(a, NAMES.A);
    assert.ok(await a.isVisible('#admin-menu-button'), 'admin menu for the creator');
    await waitMembers(a, 1);

    const joinFrame = sentBy('A')[0];
    assert.deepEqual(Object.keys(joinFrame), ['type', 'roomId', 'adminHash', 'payload']);
    assert.equal(joinFrame.type, 'join');
    assert.equal(joinFrame.roomId, r1.roomId);
    assert.equal(joinFrame.payload, '', 'the display name is not sent in clear');
    assert.equal(joinFrame.adminHash, crypto.createHash('sha256').update(Buffer.from(r1.admin, 'base64url')).digest('hex'),
      'adminHash = hex SHA-256 of the admin token\'s bytes, as BenchTalks');
  });

  step('a second member joins from the share link (no admin menu for them)', async () => {
    const a = pages.get('A');
    await a.click('#share-button');
    const link = await linkFromDialog(a);
    assert.equal(link, `${url}/room.html?room=${r1.roomId}#key=${r1.key}`, 'share link: room and key, never the admin token');

    const b = await newPage('B', { dark: true });
    await b.goto(link);
    await join(b, NAMES.B);
    assert.equal(await b.isVisible('#admin-menu-button'), false);
    assert.equal(await b.evaluate(() => document.body.classList.contains('is-admin')), false);
    await waitMembers(a, 2);
    await waitMembers(b, 2);
    await waitForSys(a, /^Someone joined the bench$/);
    const bJoin = sentBy('B')[0];
    assert.match(bJoin.adminHash, HEX64, 'members present a fresh hash (used only if their join creates the room)');
    assert.notEqual(bJoin.adminHash, sentBy('A')[0].adminHash);
  });

  step('messages flow both ways, rendered as text', async () => {
    const a = pages.get('A');
    const b = pages.get('B');
    await a.fill('#composer', TEXT.a1);
    await a.press('#composer', 'Enter');
    await waitForText(a, TEXT.a1);
    await waitForText(b, TEXT.a1);
    const names = await b.$$eval('#messages .msg .name', (els) => els.map((e) => e.textContent));
    assert.deepEqual(names, [NAMES.A]);

    await b.fill('#composer', TEXT.b1);
    await b.click('#send');
    await waitForText(a, TEXT.b1);
    await b.fill('#composer', TEXT.xss);
    await b.press('#composer', 'Enter');
    await waitForText(a, TEXT.xss);
    assert.equal(await a.evaluate(() => window.__pwned), undefined);
    assert.equal(await a.locator('#messages img').count(), 0, 'markup in a message stays text');
    assert.equal(await a.locator('#messages .msg').count(), 3);
    assert.equal(await b.locator('#messages .msg').count(), 3, 'no echo, no duplicates');
  });

  step('an image arrives decrypted on the other side', async () => {
    const a = pages.get('A');
    const b = pages.get('B');
    secrets.add(SMALL_PNG.toString('base64').slice(0, 40));
    await a.setInputFiles('#image-input', { name: 'tiny.png', mimeType: 'image/png', buffer: SMALL_PNG });
    await b.waitForFunction(() => document.querySelectorAll('#messages img[data-testid="msg-image"]').length === 1, null, { timeout: 10_000 });
    const px = await lastImagePixels(b);
    assert.equal(px.w, SMALL.w);
    assert.equal(px.h, SMALL.h);
    for (let y = 0; y < SMALL.h; y++) {
      for (let x = 0; x < SMALL.w; x++) {
        const i = (y * SMALL.w + x) * 4;
        assert.deepEqual(px.data.slice(i, i + 4), [...SMALL.pixel(x, y), 255], `pixel ${x},${y}`);
      }
    }
    assert.equal(await imageCount(a), 1, 'the sender sees its own image');
    const src = await b.getAttribute('#messages img[data-testid="msg-image"]', 'src');
    assert.match(src, /^blob:/);
    // The image frame: an opaque secretbox payload of exactly the expected size.
    const frame = sentBy('A').find((f) => f.type === 'image');
    assert.deepEqual(Object.keys(frame), ['type', 'roomId', 'payload']);
    assert.equal(frame.payload.length, Math.ceil((SMALL_PNG.length + 40) / 3) * 4);
    await saveScreenshot(a, 'bench-03-room-admin-light');
    await saveScreenshot(b, 'bench-04-room-member-dark');
  });

  step('an image over the server\'s MAX_FILE_SIZE: the server\'s error is shown, then the client knows the limit', async () => {
    const a = pages.get('A');
    const b = pages.get('B');
    assert.ok(BIG_PNG.length > MAX_FILE_SIZE && BIG_PNG.length < 10 * 1024 * 1024);
    const before = sentBy('A').filter((f) => f.type === 'image').length;
    await a.setInputFiles('#image-input', { name: 'noise.png', mimeType: 'image/png', buffer: BIG_PNG });
    await a.waitForSelector('#error:not([hidden])');
    assert.match(await a.textContent('#error'), /image too large: the limit is 65536 bytes/);
    await a.waitForSelector('#messages .msg.failed .fail-note');
    assert.equal(sentBy('A').filter((f) => f.type === 'image').length, before + 1, 'sent once');
    await saveScreenshot(a, 'bench-05-image-too-large');

    // Second try: refused here, nothing sent.
    await a.setInputFiles('#image-input', { name: 'noise.png', mimeType: 'image/png', buffer: BIG_PNG });
    await a.waitForFunction(() => /limit on this bench is 64\.0 KB/.test(document.getElementById('error').textContent));
    assert.equal(sentBy('A').filter((f) => f.type === 'image').length, before + 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await imageCount(b), 1, 'the member never got the oversized image');
  });

  step('one-time invite: opens the bench once, the second use is refused', async () => {
    const a = pages.get('A');
    await adminMenu(a, 'invite-once');
    const link = await linkFromDialog(a);
    const u = new URL(link);
    assert.equal(u.origin + u.pathname + u.search, `${url}/room.html`, 'nothing but the fragment identifies the invite');
    const f = new URLSearchParams(u.hash.slice(1));
    assert.match(f.get('invite'), /^[A-Za-z0-9_-]{43}$/);
    assert.match(f.get('ik'), /^[A-Za-z0-9_-]{43}$/);
    secrets.add(f.get('ik'));
    secrets.add(Buffer.from(f.get('ik'), 'base64url').toString('base64'));
    const post = requests.find((r) => r.label === 'A' && r.method === 'POST' && r.url === `${url}/api/invite`);
    const body = JSON.parse(post.body);
    assert.deepEqual(Object.keys(body), ['roomId', 'encryptedPayload']);
    assert.equal(body.roomId, r1.roomId);

    const c = await newPage('C');
    await c.goto(link);
    await join(c, NAMES.C);
    const back = trackRoomLink(c.url());
    assert.equal(back.roomId, r1.roomId);
    assert.equal(back.key, r1.key, 'the invite delivered the room key');
    assert.equal(back.admin, null);
    for (const p of [a, pages.get('B'), c]) await waitMembers(p, 3);
    assert.ok(requests.some((r) => r.label === 'C' && r.url === `${url}/join/${f.get('invite')}`));

    const d = await newPage('D');
    await d.goto(link);
    await waitState(d, 'invite-invalid');
    assert.match(await d.textContent('#ended-text'), /invalid, has expired or has already been used/);
    assert.equal(frames.filter((x) => x.label === 'D').length, 0, 'no socket for a used invite');
    await saveScreenshot(d, 'bench-06-invite-used');
    await closePage('D');
  });

  step('pairing: request_pair answers a pairing URL; opening it claims (no park here: an error is shown)', async () => {
    const a = pages.get('A');
    await adminMenu(a, 'pair-bench');
    await a.waitForSelector('#pair-dialog[open]');
    await a.fill('#claimer-input', 'not a bench id!');
    await a.click('#pair-submit');
    await a.waitForSelector('#pair-error:not([hidden])');
    await a.fill('#claimer-input', 'bench-b');
    await a.click('#pair-submit');
    await a.waitForSelector('#link-dialog[open]');
    await saveScreenshot(a, 'bench-08-pairing-link');
    const link = await linkFromDialog(a);
    const u = new URL(link);
    assert.equal(u.pathname, '/room.html');
    assert.equal(u.searchParams.get('room'), r1.roomId);
    assert.equal(u.searchParams.get('claimer'), 'bench-b');
    const token = u.searchParams.get('pair');
    assert.equal(Buffer.from(token, 'base64').length, 32);
    assert.equal(u.hash, `#key=${r1.key}&admin=${r1.admin}`, 'BenchTalks\' pairing URL keeps key and admin token');
    const req = sentBy('A').find((x) => x.type === 'request_pair');
    assert.equal(req.adminHash, 'bench-b');
    assert.equal(req.payload, Buffer.from(r1.admin, 'base64url').toString('base64'), 'the admin token, standard base64');

    const p = await newPage('P');
    await p.goto(link);
    await join(p, NAMES.P);
    await p.waitForFunction(() => /not connected to a park/.test(document.getElementById('error').textContent));
    const claim = sentBy('P').find((x) => x.type === 'claim_pair');
    assert.equal(claim.payload, token);
    assert.equal(new URL(p.url()).searchParams.get('pair'), null, 'the single-use token left the address bar');
    await closePage('P');
    await waitMembers(a, 3); // A, B and C
  });

  step('the admin bans a member: they are kicked, the others see them leave', async () => {
    const a = pages.get('A');
    const b = pages.get('B');
    const c = pages.get('C');
    await c.fill('#composer', TEXT.c1);
    await c.press('#composer', 'Enter');
    await waitForText(a, TEXT.c1);
    await waitForText(b, TEXT.c1);
    assert.equal(await b.locator('#messages .ban-btn:visible').count(), 0, 'members have no ban buttons');
    const welcome = frames.find((x) => x.label === 'C' && x.dir === 'recv' && JSON.parse(x.payload).type === 'welcome');
    const carolId = JSON.parse(welcome.payload).senderId;
    const row = a.locator(`#messages .msg[data-sender-id="${carolId}"]`).first();
    await row.locator('.ban-btn').click();
    await confirm(a);
    await waitState(c, 'kicked');
    await waitMembers(a, 2);
    await waitMembers(b, 2);
    await waitForSys(a, new RegExp(`^${NAMES.C} was banned from the bench$`));
    await waitForSys(b, new RegExp(`^${NAMES.C} left the bench$`));
    const ban = sentBy('A').find((x) => x.type === 'ban_client');
    assert.equal(ban.payload, carolId);
    await saveScreenshot(c, 'bench-07-kicked');
    await closePage('C');

    // The ban holds (by address: every test browser is 127.0.0.1): the link no longer works.
    const again = await newPage('C2');
    await again.goto(`${url}/room.html?room=${r1.roomId}#key=${r1.key}`);
    await waitState(again, 'join');
    await again.fill('#name-input', NAMES.C);
    await again.click('#join-button');
    await waitState(again, 'banned');
    assert.match(await again.textContent('#ended-title'), /banned/);
    await closePage('C2');
  });

  step('make public: both sides see it', async () => {
    const a = pages.get('A');
    const b = pages.get('B');
    await adminMenu(a, 'make-public');
    await confirm(a);
    await a.waitForSelector('#public-badge:not([hidden])');
    await b.waitForSelector('#public-badge:not([hidden])');
    await waitForSys(b, /now public/);
  });

  step('the admin deletes the bench: everyone sees it gone', async () => {
    const a = pages.get('A');
    const b = pages.get('B');
    await adminMenu(a, 'delete-bench');
    await a.waitForSelector('#confirm-dialog[open]');
    await saveScreenshot(a, 'bench-09-confirm-delete');
    await a.click('#confirm-ok');
    await waitState(a, 'deleted');
    await waitState(b, 'deleted');
    assert.equal(await b.textContent('#ended-title'), 'This bench was deleted');
    await saveScreenshot(b, 'bench-10-deleted-dark');
    await b.waitForTimeout(300);
    assert.equal(await b.evaluate(() => document.body.dataset.state), 'deleted', 'no reconnect after a delete');
    await closePage('A');
    await closePage('B');
  });

  step('an emptied bench vanishes; the next first joiner becomes its admin', async () => {
    const e = await newPage('E');
    await e.goto(`${url}/`);
    await waitState(e, 'home');
    await e.click('#create-bench');
    Object.assign(r2, trackRoomLink(e.url()));
    r2.adminUrl = e.url();
    await join(e, NAMES.E);
    const link = `${url}/room.html?room=${r2.roomId}#key=${r2.key}`;
    const f = await newPage('F');
    await f.goto(link);
    await join(f, NAMES.F);
    assert.equal(await f.isVisible('#admin-menu-button'), false);
    await waitMembers(e, 2);
    await closePage('E');
    await waitMembers(f, 1);
    await closePage('F');
    const deadline = Date.now() + 10_000;
    while ((await health()).rooms !== 0) {
      assert.ok(Date.now() < deadline, 'rooms did not empty');
      await new Promise((r) => setTimeout(r, 100));
    }

    // Frank comes back first with the plain link: his join creates the bench anew.
    const f2 = await newPage('F2');
    await f2.goto(link);
    await join(f2, NAMES.F);
    await waitMembers(f2, 1);
    assert.ok(await f2.isVisible('#admin-menu-button'), 'the new first joiner has the admin menu');
    await waitForSys(f2, /first one here/);
    const now = trackRoomLink(f2.url());
    assert.ok(now.admin, 'his admin token is kept in the fragment (reload-proof)');
    assert.equal(crypto.createHash('sha256').update(Buffer.from(now.admin, 'base64url')).digest('hex'), sentBy('F2')[0].adminHash);
    await saveScreenshot(f2, 'bench-11-new-first-joiner-admin');

    // Erin's old admin link no longer makes an admin (server: admin_claim first).
    const g = await newPage('G');
    await g.goto(r2.adminUrl);
    await join(g, NAMES.G);
    await waitMembers(f2, 2);
    assert.ok(await g.isVisible('#admin-menu-button'), 'a link with a token shows the menu, as in BenchTalks');
    await adminMenu(g, 'make-public');
    await confirm(g);
    await g.waitForFunction(() => /invalid admin token/.test(document.getElementById('error').textContent));
    await g.waitForSelector('#admin', { state: 'hidden' });
    assert.equal(new URL(g.url()).hash, `#key=${r2.key}`, 'the refused token left the address bar');

    await adminMenu(f2, 'make-public');
    await confirm(f2);
    await g.waitForSelector('#public-badge:not([hidden])');
    await closePage('G');
    await closePage('F2');
  });

  step('the server never received a plaintext, a name, a key or the image', async () => {
    const sent = frames.filter((f) => f.dir === 'sent');
    assert.ok(sent.length >= 15, `captured ${sent.length} sent frames`);
    const plain = [...Object.values(TEXT), ...Object.values(NAMES), ...TEXT.b1.split('\n')];
    const adminTokens = new Set([...adminSecrets].map((t) => Buffer.from(t, 'base64url').toString('base64')));
    for (const f of sent) {
      const j = JSON.parse(f.payload);
      assert.ok(CLIENT_TYPES.has(j.type), `unexpected frame type ${j.type}`);
      for (const s of plain) assert.ok(!f.payload.includes(s), `${f.label} sent "${s}" in clear`);
      for (const s of secrets) assert.ok(!f.payload.includes(s), `${f.label} sent a key or image bytes`);
      if (j.type === 'join') assert.match(j.adminHash, HEX64);
      if (ADMIN_TYPES.has(j.type)) {
        const token = j.type === 'ban_client' ? j.adminToken : j.payload;
        assert.ok(adminTokens.has(token), `${j.type} from ${f.label} carries a known admin token`);
      }
    }
    // Admin tokens go out in admin actions only (BenchTalks' design), never in anything else.
    for (const t of adminTokens) {
      const url64 = Buffer.from(t, 'base64').toString('base64url');
      for (const f of sent) {
        const j = JSON.parse(f.payload);
        if (!ADMIN_TYPES.has(j.type)) assert.ok(!f.payload.includes(t) && !f.payload.includes(url64), `admin token in a ${j.type} frame`);
      }
    }
    for (const r of requests) {
      const wire = r.url.split('#')[0] + r.body;
      for (const s of [...plain, ...secrets, ...adminTokens, ...adminSecrets]) assert.ok(!wire.includes(s), `${r.label} ${r.method} ${r.url.split('#')[0]} carried a secret`);
    }
    const log = server.logs();
    for (const s of [...plain, ...secrets, ...adminTokens, ...adminSecrets]) assert.ok(!log.includes(s), 'the server log holds a secret');
  });

  step('no CSP or Trusted Types violations, no page errors', async () => {
    assert.deepEqual(problems, []);
  });
});
