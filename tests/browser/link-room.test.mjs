// End-to-end test of the link-room web client in real Chromium.
//
// Server under test:
//   default          $PARLEYD started with a copy of $PARLEY_LINK_PROFILE in which
//                    @PORT@ and @STATE@ are replaced (free port, temp state dir);
//                    $PARLEYD_ARGS (optional) overrides the argv, "@PROFILE@" = profile path
//   LINK_SERVER=mock lib/mock-link-server.mjs (same protocol, in-process)
// Browser: $CHROMIUM or /usr/bin/chromium. Screenshots/logs: $ARTIFACTS_DIR or ./artifacts.

import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';

import {
  launchBrowser, haveChromium, chromiumPath, startParleyd, freePort, writeProfile, saveScreenshot, artifactsDir,
} from './lib/harness.mjs';
import {
  newRecordedPage, screenshotSteps, waitState, waitForText, sendWithEnter, createRoomOn,
} from './lib/link-page.mjs';
import { startMockLinkServer } from './lib/mock-link-server.mjs';
import { displayName } from '../../plugins/transport-ws/web/link/names.js';

const MODE = process.env.LINK_SERVER === 'mock' ? 'mock' : 'parleyd';
const skip = !haveChromium()
  ? `no Chromium at ${chromiumPath()} (set CHROMIUM)`
  : MODE === 'parleyd' && !(process.env.PARLEYD && process.env.PARLEY_LINK_PROFILE)
    ? 'PARLEYD and PARLEY_LINK_PROFILE not set (or run with LINK_SERVER=mock)'
    : false;
// Under ctest a missing browser or server is a failure, never a silent skip.
if (skip && process.env.PARLEY_REQUIRE_BROWSER === '1') throw new Error(`cannot run: ${skip}`);

const T = 60_000;
const nonce = crypto.randomBytes(4).toString('hex');
// Every plaintext the test types; none may ever reach the server.
const TEXT = {
  a1: `hello from A ${nonce}`,
  b1: `reply from B ${nonce}\nsecond line`,
  xss: `<img src=x onerror="window.__pwned=1"> ${nonce}`,
  a2: `sent while D was away ${nonce}`,
  p1: `protected hello ${nonce}`,
  q1: `protected reply ${nonce}`,
};
const PASSWORD = `correct horse ${nonce}`;
const WRONG_PASSWORD = `wrong horse ${nonce}`;
const ALLOWED_CLIENT_TYPES = new Set(['message', 'clear_history', 'auth']);

describe(`link room (${MODE})`, { skip }, () => {
  let server;
  let browser;
  let stateDir;
  const pages = new Map();   // label -> page
  const frames = [];         // {label, dir: 'sent'|'recv', url, payload}
  const requests = [];       // every URL any page requested
  const problems = [];       // CSP / Trusted Types violations, page errors
  const room = {};           // filled as the test goes

  before(async () => {
    // Failure screenshots of an earlier run would be misleading.
    for (const f of fs.readdirSync(artifactsDir())) if (f.startsWith('FAILED-')) fs.rmSync(path.join(artifactsDir(), f));
    if (MODE === 'mock') {
      server = await startMockLinkServer();
    } else {
      const port = await freePort();
      stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-link-state-'));
      const profile = await writeProfile(process.env.PARLEY_LINK_PROFILE, { port, stateDir });
      const args = process.env.PARLEYD_ARGS?.split(/\s+/).filter(Boolean).map((a) => a.replaceAll('@PROFILE@', profile));
      server = await startParleyd({ profile, port, args, logFile: path.join(artifactsDir(), 'parleyd-link.log') });
    }
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    if (server) {
      await server.stop();
      if (MODE === 'mock') await fsp.writeFile(path.join(artifactsDir(), 'mock-link-server.log'), server.logs());
    }
    if (stateDir) await fsp.rm(stateDir, { recursive: true, force: true });
  });

  // ---------------------------------------------------------------- helpers

  async function newPage(label, contextOptions = {}) {
    const page = await newRecordedPage(browser, label, { pages, frames, contextOptions });
    page.on('request', (req) => requests.push(req.url()));
    page.on('console', (msg) => {
      if (/Content.Security.Policy|Trusted ?Type|Refused to/i.test(msg.text())) problems.push(`${label}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`${label}: pageerror ${err.message}`));
    return page;
  }

  // Wraps it(): on failure, screenshot every open page before rethrowing.
  const step = screenshotSteps(pages, { timeout: T });

  const texts = (page) => page.$$eval('#messages .msg .text', (els) => els.map((e) => e.textContent));
  const froms = (page) => page.$$eval('#messages .msg', (els) => els.map((e) => e.dataset.from));
  const waitForCount = (page, n) =>
    page.waitForFunction((k) => document.querySelectorAll('#messages .msg').length === k, n, { timeout: 10_000 });
  const waitMembers = (page, n) =>
    page.waitForFunction((k) => document.getElementById('members').dataset.count === String(k), n, { timeout: 10_000 });

  // Reads this room's IndexedDB record from inside the page.
  const readRecord = (page, roomId) => page.evaluate((id) => new Promise((resolve, reject) => {
    const open = indexedDB.open('secure_chat_keys');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const get = open.result.transaction('room_keys').objectStore('room_keys').get(id);
      get.onerror = () => reject(get.error);
      get.onsuccess = async () => {
        const r = get.result;
        if (!r) return resolve(null);
        let exportable = true;
        try { await crypto.subtle.exportKey('raw', r.key); } catch { exportable = false; }
        resolve({
          isCryptoKey: r.key instanceof CryptoKey, extractable: r.key.extractable, algorithm: r.key.algorithm.name,
          length: r.key.algorithm.length, usages: [...r.key.usages].sort(), exportable,
          clientId: r.clientId, updatedAt: r.updatedAt, inviteKey: r.inviteKey, hasPassword: 'password' in r,
        });
      };
    };
  }), roomId);

  async function createRoom(page, { password } = {}) {
    const { res, invite } = await createRoomOn(page, server.url, { password });
    const csp = res.headers()['content-security-policy'] ?? '';
    for (const d of ["script-src 'self'", "require-trusted-types-for 'script'", "frame-ancestors 'none'", "default-src 'none'"]) {
      assert.ok(csp.includes(d), `CSP lacks ${d}: ${csp}`);
    }
    const m = new RegExp(`^${server.url.replace(/[.]/g, '\\.')}/room/([A-Za-z0-9_-]{22})#([A-Za-z0-9_-]{43})$`).exec(invite);
    assert.ok(m, `unexpected invite link ${invite}`);
    assert.equal(page.url(), `${server.url}/room/${m[1]}`, 'the key must be gone from the address bar');
    return { invite, roomId: m[1], key: m[2] };
  }

  async function joinWithInvite(page, invite, roomId) {
    await page.goto(invite);
    await page.waitForURL(`${server.url}/room/${roomId}`); // reloaded without the #key
  }

  // ------------------------------------------------------------------ tests

  step('creator opens /new_chat and gets an invite link', async () => {
    const a = await newPage('A');
    await a.goto(`${server.url}/new_chat`);
    await waitState(a, 'new');
    await saveScreenshot(a, 'link-01-new-chat');
    Object.assign(room, await createRoom(a));

    const rec = await readRecord(a, room.roomId);
    assert.equal(rec.isCryptoKey, true);
    assert.equal(rec.extractable, false);
    assert.equal(rec.exportable, false, 'exportKey must fail on the stored key');
    assert.equal(rec.algorithm, 'AES-GCM');
    assert.equal(rec.length, 256);
    assert.deepEqual(rec.usages, ['decrypt', 'encrypt']);
    assert.match(rec.clientId, /^[a-z0-9]{8}$/);
    assert.equal(rec.inviteKey, room.key);
    assert.ok(Number.isFinite(rec.updatedAt));
    room.aId = rec.clientId;
    assert.equal(await a.textContent('#me-name'), displayName(room.aId));
  });

  step('a second browser joins from the invite and messages flow both ways', async () => {
    const a = pages.get('A');
    const b = await newPage('B');
    await joinWithInvite(b, room.invite, room.roomId);
    await waitState(b, 'online');
    const rec = await readRecord(b, room.roomId);
    assert.equal(rec.extractable, false);
    assert.notEqual(rec.clientId, room.aId);
    room.bId = rec.clientId;
    await waitMembers(a, 2);
    await waitMembers(b, 2);

    // A → B with Enter.
    await sendWithEnter(a, TEXT.a1);
    await waitForText(b, TEXT.a1);
    const fromA = b.locator('#messages .msg').filter({ hasText: TEXT.a1 });
    assert.equal(await fromA.getAttribute('data-from'), room.aId);
    assert.equal(await fromA.locator('.name').textContent(), displayName(room.aId));
    assert.equal(await a.locator('#messages .msg.own').filter({ hasText: TEXT.a1 }).count(), 1, 'own message shown locally');

    // B → A typed with Shift+Enter for the newline, sent with the button.
    const [line1, line2] = TEXT.b1.split('\n');
    await b.click('#composer');
    await b.keyboard.type(line1);
    await b.keyboard.press('Shift+Enter');
    await b.keyboard.type(line2);
    assert.equal(await b.inputValue('#composer'), TEXT.b1, 'Shift+Enter inserts a newline, does not send');
    await b.click('#send');
    await waitForText(b, TEXT.b1);
    await waitForText(a, TEXT.b1);
    assert.equal(await b.inputValue('#composer'), '');

    // Markup arrives as text, never as DOM.
    await sendWithEnter(a, TEXT.xss);
    await waitForText(b, TEXT.xss);
    assert.equal(await b.locator('#messages img').count(), 0);
    assert.equal(await b.evaluate(() => window.__pwned), undefined);

    assert.deepEqual(await texts(a), [TEXT.a1, TEXT.b1, TEXT.xss]);
    assert.deepEqual(await texts(b), [TEXT.a1, TEXT.b1, TEXT.xss]);
    await saveScreenshot(a, 'link-02-room-A');
    await saveScreenshot(b, 'link-03-room-B');
  });

  step('copy invite button puts the invite on the clipboard', async () => {
    const a = pages.get('A');
    await a.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await a.click('#copy-invite');
    await a.waitForFunction(() => document.getElementById('copy-invite').textContent !== 'Copy', null, { timeout: 5000 });
    assert.equal(await a.evaluate(() => navigator.clipboard.readText()), room.invite);
  });

  step('a late joiner (dark mode) sees the history decrypted', async () => {
    const c = await newPage('C', { colorScheme: 'dark' });
    await joinWithInvite(c, room.invite, room.roomId);
    await waitState(c, 'online');
    assert.deepEqual(await texts(c), [TEXT.a1, TEXT.b1, TEXT.xss]);
    assert.deepEqual(await froms(c), [room.aId, room.bId, room.aId]);
    await waitMembers(pages.get('A'), 3);
    await saveScreenshot(c, 'link-04-late-joiner-dark');
  });

  step('reload keeps key and clientId; history is not duplicated', async () => {
    const b = pages.get('B');
    await b.reload();
    await waitState(b, 'online');
    assert.equal(b.url(), `${server.url}/room/${room.roomId}`);
    assert.deepEqual(await texts(b), [TEXT.a1, TEXT.b1, TEXT.xss]);
    // B's own message from history is still recognised as B's.
    assert.equal(await b.locator('#messages .msg.own').count(), 1);
    assert.equal((await readRecord(b, room.roomId)).clientId, room.bId);
  });

  step('replayed frames and reconnect overlap are ignored; missed messages recovered', async () => {
    // D's socket goes through a Playwright WebSocket route that delivers every
    // server frame twice (a replaying relay) and can cut the connection.
    const d = await newPage('D');
    const routes = [];
    await d.routeWebSocket(/\/ws\//, (ws) => {
      const upstream = ws.connectToServer();
      routes.push(ws);
      ws.onMessage((m) => { frames.push({ label: 'D', dir: 'sent', url: ws.url(), payload: String(m) }); upstream.send(m); });
      upstream.onMessage((m) => {
        frames.push({ label: 'D', dir: 'recv', url: ws.url(), payload: String(m) });
        ws.send(m);
        const t = JSON.parse(m).type;
        if (t === 'message' || t === 'history') ws.send(m); // replay
      });
    });
    await joinWithInvite(d, room.invite, room.roomId);
    await waitState(d, 'online');
    assert.deepEqual(await texts(d), [TEXT.a1, TEXT.b1, TEXT.xss]);

    // Cut D off, let A talk meanwhile, and check D catches up exactly once.
    await routes.at(-1).close({ code: 4000, reason: 'test drop' });
    await d.waitForSelector('#status[data-state="offline"], #status[data-state="connecting"]', { timeout: 5000 });
    await sendWithEnter(pages.get('A'), TEXT.a2);
    await waitState(d, 'online', 20_000);
    await waitForText(d, TEXT.a2);
    assert.ok(routes.length >= 2, 'D reconnected');
    assert.deepEqual(await texts(d), [TEXT.a1, TEXT.b1, TEXT.xss, TEXT.a2]);
    await d.context().close();
    pages.delete('D');
  });

  step('clear history empties every open list and the stored history', async () => {
    const [a, b, c] = ['A', 'B', 'C'].map((l) => pages.get(l));
    await waitForText(b, TEXT.a2);
    await waitForText(c, TEXT.a2);
    await b.click('#clear-history'); // confirm() auto-accepted
    for (const p of [a, b, c]) await waitForCount(p, 0);
    await a.waitForSelector('#messages .sys:has-text("History cleared")', { timeout: 5000 });
    await saveScreenshot(a, 'link-05-after-clear');

    await c.reload();
    await waitState(c, 'online');
    assert.deepEqual(await texts(c), [], 'a fresh connection gets no history');
  });

  step('without the key the room page says so; a damaged key is rejected', async () => {
    const e = await newPage('E');
    await e.goto(`${server.url}/room/${room.roomId}`);
    await waitState(e, 'no-key');
    assert.match(await e.textContent('#error'), /no key/i);
    assert.equal(frames.filter((f) => f.label === 'E').length, 0, 'no socket without a key');

    await e.goto('about:blank'); // else the next goto is a same-document fragment change
    await e.goto(`${server.url}/room/${room.roomId}#not-a-valid-key`);
    await waitState(e, 'no-key');
    assert.match(await e.textContent('#error'), /damaged|not valid/i);
    assert.equal(new URL(e.url()).hash, '', 'a bad fragment is stripped too');
    await saveScreenshot(e, 'link-06-no-key');
  });

  step('a password-protected room refuses a wrong password', async () => {
    const p = await newPage('P');
    Object.assign(room, { protected: await createRoom(p, { password: PASSWORD }) });
    const { invite, roomId } = room.protected;
    const info = await (await fetch(`${server.url}/api/room/${roomId}/info`)).json();
    assert.equal(info.exists, true);
    assert.equal(info.passwordRequired, true);
    assert.equal(info.members, 1);

    const q = await newPage('Q');
    await joinWithInvite(q, invite, roomId);
    await waitState(q, 'password');
    assert.equal(await q.isVisible('#password-dialog'), true);
    assert.equal(frames.filter((f) => f.label === 'Q').length, 0, 'no socket before a password is entered');
    await saveScreenshot(q, 'link-07-password-prompt');

    await q.fill('#password', WRONG_PASSWORD);
    await q.click('#password-submit');
    await q.waitForSelector('#password-error:not([hidden])', { timeout: 10_000 });
    await waitState(q, 'password');
    assert.match(await q.textContent('#error'), /wrong/i);
    const qRecv = frames.filter((f) => f.label === 'Q' && f.dir === 'recv').map((f) => JSON.parse(f.payload));
    assert.ok(qRecv.some((f) => f.type === 'error' && f.code === 'bad_password'), 'server answered bad_password');
    assert.deepEqual(qRecv.filter((f) => ['history', 'message', 'auth_ok'].includes(f.type)), [], 'nothing leaks before auth');
    assert.equal(await q.locator('#messages .msg').count(), 0);
    await saveScreenshot(q, 'link-08-wrong-password');

    await q.fill('#password', PASSWORD);
    await q.click('#password-submit');
    await waitState(q, 'online');
    await sendWithEnter(p, TEXT.p1);
    await waitForText(q, TEXT.p1);
    await sendWithEnter(q, TEXT.q1);
    await waitForText(p, TEXT.q1);

    // The first room stayed open to anyone with its link.
    const info1 = await (await fetch(`${server.url}/api/room/${room.roomId}/info`)).json();
    assert.equal(info1.passwordRequired, false);
  });

  step('the server never received plaintext or keys', async () => {
    const plaintexts = Object.values(TEXT);
    // JSON escaping could hide a match (the newline, quotes), so also look for
    // every line on its own.
    const needles = [...new Set([...plaintexts, ...plaintexts.flatMap((t) => t.split('\n'))])];
    const keys = [room.key, room.protected.key];

    const sent = frames.filter((f) => f.dir === 'sent');
    assert.ok(sent.length >= 8, `captured ${sent.length} sent frames`);
    for (const f of sent) {
      for (const n of needles) assert.ok(!f.payload.includes(n), `${f.label} sent plaintext "${n}": ${f.payload}`);
      for (const k of keys) assert.ok(!f.payload.includes(k), `${f.label} sent a room key`);
      const j = JSON.parse(f.payload);
      assert.ok(ALLOWED_CLIENT_TYPES.has(j.type), `unexpected client frame type ${j.type}`);
      if (j.type === 'message') {
        assert.deepEqual(Object.keys(j).sort(), ['ciphertext', 'iv', 'type'], 'message frames carry nothing but ciphertext');
        assert.equal(Buffer.from(j.iv, 'base64url').length, 12);
      }
    }
    for (const f of frames.filter((x) => x.dir === 'recv')) {
      for (const n of needles) assert.ok(!f.payload.includes(n), `server sent plaintext to ${f.label}`);
    }
    for (const url of requests) {
      for (const k of keys) assert.ok(!url.includes(k), `request URL carried a key: ${url}`);
    }
    // Only the auth frames carry the password (by design); it must not be logged.
    const logs = server.logs();
    assert.ok(logs.length > 0, 'server produced logs');
    for (const n of [...needles, ...keys, PASSWORD, WRONG_PASSWORD]) {
      assert.ok(!logs.includes(n), `server log contains a secret: "${n}"`);
    }
  });

  step('no CSP / Trusted Types violations or page errors', async () => {
    assert.deepEqual(problems, []);
  });
});
