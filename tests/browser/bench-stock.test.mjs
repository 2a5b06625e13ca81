// BenchTalks' own pages served by parley (issue 6: an unmodified BenchTalks web client works).
//
// BenchTalks' pages load TweetNaCl from cdn.jsdelivr.net, use inline scripts, inline handlers and
// innerHTML, so parley's strict bench CSP would stop them. `bench.pages` (default auto: on when
// web_root has BenchTalks' layout) switches the listener to the loosest policy they need.
//
// - Always: a stand-in with BenchTalks' layout and the same page techniques (inline script and
//   handler, jsDelivr scripts, innerHTML, BenchTalks' frames and crypto) runs under `auto`, and the
//   same pages fail under `parley` (so the check can fail).
// - With BENCHTALKS_PUBLIC=<an unmodified BenchTalks pkg/public>: the stock client itself, two
//   members, messages both ways, an image, then ban (1.2.0) or delete (older).
// jsDelivr is never contacted: Playwright answers those two URLs from tests/browser/node_modules.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {
  BROWSER_TESTS_DIR, launchBrowser, haveChromium, chromiumPath, startParleyd, freePort, writeProfile,
  saveScreenshot,
} from './lib/harness.mjs';

const TEMPLATE = path.join(BROWSER_TESTS_DIR, 'profiles', 'bench-stock.yaml.in');
const STOCK = process.env.BENCHTALKS_PUBLIC || '';
const skip = !haveChromium()
  ? `no Chromium at ${chromiumPath()} (set CHROMIUM)`
  : !process.env.PARLEYD ? 'PARLEYD not set' : false;
if (skip && process.env.PARLEY_REQUIRE_BROWSER === '1') throw new Error(`cannot run: ${skip}`);

const T = 90_000;
const CDN = {
  'https://cdn.jsdelivr.net/npm/tweetnacl@1.0.3/nacl-fast.min.js': 'node_modules/tweetnacl/nacl-fast.min.js',
  'https://cdn.jsdelivr.net/npm/tweetnacl-util@0.15.1/nacl-util.min.js': 'node_modules/tweetnacl-util/nacl-util.min.js',
};
const b64url = (buf) => buf.toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

// ------------------------------------------------------------------ the stand-in pages

const STANDIN_ROOM_HTML = `<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8"><title>stand-in</title>
<style>.hidden { display: none; }</style></head>
<body>
  <div id="messages" style="font-family: monospace"></div>
  <button id="poke" onclick="window.__poked = true">poke</button>
  <script>window.__inline = true;</script>
  <script src="https://cdn.jsdelivr.net/npm/tweetnacl@1.0.3/nacl-fast.min.js"></script>
  <script src="https://cdn.jsdelivr.net/npm/tweetnacl-util@0.15.1/nacl-util.min.js"></script>
  <script src="assets/js/room.js"></script>
</body></html>`;

// BenchTalks' client techniques: frames {type, roomId, adminHash, payload}, secretbox with a
// 24-byte nonce prepended, base64 (nacl.util), messages rendered with innerHTML.
const STANDIN_ROOM_JS = `
const q = new URLSearchParams(location.search);
const f = new URLSearchParams(location.hash.slice(1));
const roomId = q.get('room');
const key = nacl.util.decodeBase64(f.get('key').replace(/-/g, '+').replace(/_/g, '/') + '=');
const ws = new WebSocket((location.protocol === 'https:' ? 'wss:' : 'ws:') + '//' + location.host + '/ws');
window.__got = [];
ws.onopen = () => ws.send(JSON.stringify({ type: 'join', roomId, adminHash: '', payload: 'stand-in' }));
ws.onmessage = (e) => {
  const d = JSON.parse(e.data);
  if (d.type === 'welcome') window.__welcome = d.payload;
  if (d.type === 'message') {
    const all = nacl.util.decodeBase64(d.payload);
    const open = nacl.secretbox.open(all.slice(24), all.slice(0, 24), key);
    const msg = JSON.parse(nacl.util.encodeUTF8(open));
    const div = document.createElement('div');
    div.innerHTML = '<span class="text">' + msg.text.replace(/[<>&]/g, '') + '</span>';
    document.getElementById('messages').appendChild(div);
    window.__got.push(msg.text);
  }
};
window.sendText = (text) => {
  const nonce = nacl.randomBytes(24);
  const box = nacl.secretbox(nacl.util.decodeUTF8(JSON.stringify({ sender: 'x', text, timestamp: Date.now() })), nonce, key);
  const all = new Uint8Array(24 + box.length); all.set(nonce); all.set(box, 24);
  ws.send(JSON.stringify({ type: 'message', roomId, payload: nacl.util.encodeBase64(all) }));
};
`;

async function writeStandIn(dir) {
  await fsp.mkdir(path.join(dir, 'assets', 'js'), { recursive: true });
  await fsp.writeFile(path.join(dir, 'room.html'), STANDIN_ROOM_HTML);
  await fsp.writeFile(path.join(dir, 'index.html'), '<!DOCTYPE html><title>stand-in</title>');
  await fsp.writeFile(path.join(dir, 'assets', 'js', 'room.js'), STANDIN_ROOM_JS);
}

// ------------------------------------------------------------------ shared plumbing

async function startBench({ webRoot, pages }) {
  const port = await freePort();
  const stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-bench-stock-'));
  const profile = await writeProfile(TEMPLATE, { port, stateDir, vars: { WEB_ROOT: webRoot, PAGES: pages } });
  const server = await startParleyd({ profile, port });
  return { server, stateDir };
}

async function openPage(browser, url, { name = 'member', dialogs = [] } = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('dialog', async (d) => {
    dialogs.push({ type: d.type(), message: d.message() });
    if (d.type() === 'prompt') await d.accept(name);
    else await d.accept();
  });
  for (const [url, file] of Object.entries(CDN)) {
    const body = await fsp.readFile(path.join(BROWSER_TESTS_DIR, file));
    await page.route(url, (route) => route.fulfill({ status: 200, contentType: 'text/javascript', body }));
  }
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const response = await page.goto(url);
  return { page, context, errors, response };
}

function roomUrls(base) {
  const roomId = crypto.randomBytes(16).toString('hex');
  const key = b64url(crypto.randomBytes(32));
  const admin = b64url(crypto.randomBytes(32));
  return {
    admin: `${base}/room.html?room=${roomId}#key=${key}&admin=${admin}`,
    member: `${base}/room.html?room=${roomId}#key=${key}`,
  };
}

// ------------------------------------------------------------------ tests

describe('BenchTalks pages served by parley', { skip, timeout: 5 * T }, () => {
  let browser;
  let standIn;
  before(async () => {
    browser = await launchBrowser();
    standIn = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-benchtalks-standin-'));
    await writeStandIn(standIn);
  });
  after(async () => {
    await browser?.close();
    if (standIn) await fsp.rm(standIn, { recursive: true, force: true });
  });

  it('auto: a BenchTalks layout gets the policy its pages need, and they work', { timeout: T }, async () => {
    const { server, stateDir } = await startBench({ webRoot: standIn, pages: 'auto' });
    try {
      const urls = roomUrls(server.url);
      const a = await openPage(browser, urls.admin);
      const csp = a.response.headers()['content-security-policy'];
      assert.match(csp, /script-src 'self' 'unsafe-inline' https:\/\/cdn\.jsdelivr\.net/);
      assert.doesNotMatch(csp, /require-trusted-types-for/);
      assert.match(csp, /frame-ancestors 'none'/, 'the rest of the policy stays strict');
      await a.page.waitForFunction(() => window.__welcome === '1', null, { timeout: 10_000 });
      const b = await openPage(browser, urls.member);
      await b.page.waitForFunction(() => window.__welcome === '2', null, { timeout: 10_000 });
      await a.page.evaluate(() => window.sendText('from A'));
      await b.page.waitForFunction(() => window.__got.includes('from A'), null, { timeout: 10_000 });
      await b.page.evaluate(() => window.sendText('from B'));
      await a.page.waitForFunction(() => window.__got.includes('from B'), null, { timeout: 10_000 });
      await a.page.click('#poke');
      assert.equal(await a.page.evaluate(() => window.__poked), true, 'inline handler ran');
      for (const p of [a, b]) {
        assert.equal(await p.page.evaluate(() => window.__inline), true, 'inline script ran');
        assert.deepEqual(await p.page.evaluate(() => window.__violations), []);
        assert.deepEqual(p.errors, []);
      }
      assert.match(server.logs(), /serving BenchTalks' own pages/);
      await a.context.close();
      await b.context.close();
    } finally {
      await server.stop();
      await fsp.rm(stateDir, { recursive: true, force: true });
    }
  });

  it('parley: the same pages are blocked by the strict policy', { timeout: T }, async () => {
    const { server, stateDir } = await startBench({ webRoot: standIn, pages: 'parley' });
    try {
      const urls = roomUrls(server.url);
      const a = await openPage(browser, urls.member);
      const csp = a.response.headers()['content-security-policy'];
      assert.match(csp, /script-src 'self';/);
      await a.page.waitForTimeout(500);
      assert.equal(await a.page.evaluate(() => window.__inline), undefined, 'inline script blocked');
      const violations = await a.page.evaluate(() => window.__violations);
      assert.ok(violations.some((v) => v.startsWith('script-src')), `violations: ${violations}`);
      await a.context.close();
    } finally {
      await server.stop();
      await fsp.rm(stateDir, { recursive: true, force: true });
    }
  });

  it('the unmodified BenchTalks client (BENCHTALKS_PUBLIC)', {
    timeout: 2 * T,
    skip: STOCK ? false : 'BENCHTALKS_PUBLIC not set (path to an unmodified BenchTalks pkg/public)',
  }, async () => {
    assert.ok(fs.existsSync(path.join(STOCK, 'assets', 'js', 'room.js')), `${STOCK} is not a BenchTalks pkg/public`);
    const { server, stateDir } = await startBench({ webRoot: path.resolve(STOCK), pages: 'auto' });
    try {
      const urls = roomUrls(server.url);
      const dialogsA = [];
      const dialogsB = [];
      const a = await openPage(browser, urls.admin, { name: 'Alice', dialogs: dialogsA });
      await a.page.waitForSelector('#roomInterface:not(.hidden)', { timeout: 15_000 });
      const b = await openPage(browser, urls.member, { name: 'Bob', dialogs: dialogsB });
      await b.page.waitForSelector('#roomInterface:not(.hidden)', { timeout: 15_000 });
      await a.page.waitForFunction(() => /2 people/.test(document.getElementById('userCount').textContent));

      const nonce = crypto.randomBytes(4).toString('hex');
      await a.page.fill('#messageInput', `hello from Alice ${nonce}`);
      await a.page.click('#sendBtn');
      await b.page.waitForFunction((t) => [...document.querySelectorAll('.message-content')]
        .some((e) => e.textContent.includes(t)), `hello from Alice ${nonce}`, { timeout: 10_000 });
      await b.page.fill('#messageInput', `reply from Bob ${nonce}`);
      await b.page.click('#sendBtn');
      await a.page.waitForFunction((t) => [...document.querySelectorAll('.message-content')]
        .some((e) => e.textContent.includes(t)), `reply from Bob ${nonce}`, { timeout: 10_000 });

      // A 1x1 PNG through the stock image path (encrypt, one text frame, decrypt, blob: URL).
      const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC', 'base64');
      await a.page.setInputFiles('#imageInput', { name: 'dot.png', mimeType: 'image/png', buffer: png });
      await b.page.waitForSelector('img.message-image', { timeout: 10_000 });

      const banButton = await a.page.$('.btn-ban');
      if (banButton) {
        // 1.2.0: the admin bans Bob from Bob's message; Bob's page shows the ban.
        await banButton.click();
        await b.page.waitForSelector('#errorState:not(.hidden)', { timeout: 10_000 });
        assert.match(await b.page.textContent('#errorText'), /banned/i);
      } else {
        await a.page.click('#adminMenuBtn');
        await a.page.click('#deleteBenchBtn');
        await b.page.waitForSelector('#errorState:not(.hidden)', { timeout: 10_000 });
        assert.match(await b.page.textContent('#errorText'), /deleted/i);
      }
      await saveScreenshot(a.page, 'bench-stock-admin');
      await saveScreenshot(b.page, 'bench-stock-member');
      for (const p of [a, b]) {
        assert.deepEqual(await p.page.evaluate(() => window.__violations), []);
        assert.deepEqual(p.errors, []);
      }
      const alerts = [...dialogsA, ...dialogsB].filter((d) => d.type === 'alert');
      assert.deepEqual(alerts, [], 'the server sent no error frames');
      assert.ok(!server.logs().includes(nonce), 'no plaintext in the log');
      await a.context.close();
      await b.context.close();
    } finally {
      await server.stop();
      await fsp.rm(stateDir, { recursive: true, force: true });
    }
  });
});
