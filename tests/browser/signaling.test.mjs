// A call through parley's signaling service with real parts: coturn (use-auth-secret) on
// loopback, a real parleyd with the relay profile, and headless Chromium pages that prove their
// Ed25519 identities on the relay socket, get TURN credentials from parley, join a call room and
// negotiate through parley with iceTransportPolicy "relay" (the web client's call.js). Asserts:
// the selected candidate pair is relay/relay and bytes flowed both ways; a circle member outside
// the room's ACL gets room_join_error and cannot signal the members; credentials with an expired
// timestamp get no relay candidate from coturn while parley-issued ones do.
//
// Env: PARLEYD, PARLEY_CLI; PARLEY_REQUIRE_BROWSER=1 turns a missing Chromium/coturn into a failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  freePort, startParleyd, writeProfile, launchBrowser, haveChromium, saveScreenshot, BROWSER_TESTS_DIR,
} from './lib/harness.mjs';

const PROFILE = path.join(BROWSER_TESTS_DIR, 'profiles', 'signaling.yaml.in');
const CLI = process.env.PARLEY_CLI;
const TURNSERVER = '/usr/bin/turnserver';
const REQUIRE = process.env.PARLEY_REQUIRE_BROWSER === '1';
const missing = !haveChromium() ? 'chromium not installed' : !fs.existsSync(TURNSERVER) ? 'coturn not installed' : null;
if (missing && REQUIRE) throw new Error(`PARLEY_REQUIRE_BROWSER=1 but ${missing}`);

const MEDIA_ARGS = [
  '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--disable-features=WebRtcHideLocalIpsWithMdns', '--allow-loopback-in-peer-connection',
];

let tmp; let d; let turn; let turnPort; let browser; let members; let secret;
const turnLog = [];

function member(i) {
  const j = JSON.parse(fs.readFileSync(path.join(tmp, 'ids', `identity-0${i}.json`), 'utf8'));
  // The 32-byte Ed25519 seed: the first half of libsodium's 64-byte secret key.
  const seed = Buffer.from(j.signing.secretKey, 'base64').subarray(0, 32).toString('base64');
  return { keyHash: j.keyHash, publicKey: j.signing.publicKey, seed };
}

async function startCoturn() {
  turnPort = await freePort();
  const base = 40000 + Math.floor(Math.random() * 200) * 100;
  const args = [
    '-n', '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${turnPort}`,
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=parley.test',
    '--allow-loopback-peers', '--no-cli', '--no-tls', '--no-dtls',
    `--min-port=${base}`, `--max-port=${base + 99}`, '--log-file=stdout', '--simple-log',
    `--pidfile=${path.join(tmp, 'turn.pid')}`, `--db=${path.join(tmp, 'turndb')}`, '--no-rfc5780',
  ];
  turn = spawn(TURNSERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  turn.stdout.on('data', (b) => turnLog.push(b.toString()));
  turn.stderr.on('data', (b) => turnLog.push(b.toString()));
  const deadline = Date.now() + 10000;
  while (!/listener opened on|Total (General|UDP) servers/i.test(turnLog.join(''))) {
    if (turn.exitCode !== null) throw new Error(`turnserver exited:\n${turnLog.join('')}`);
    if (Date.now() > deadline) throw new Error(`turnserver not ready:\n${turnLog.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  await new Promise((r) => setTimeout(r, 300));
}

before(async () => {
  if (missing) return;
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-signaling-'));
  execFileSync(CLI, ['identities', 'generate', '--count', '3', '--out', path.join(tmp, 'ids'), '--circle', 'calls'], { stdio: 'pipe' });
  members = [1, 2, 3].map(member);
  secret = crypto.randomBytes(24).toString('hex');
  await fsp.writeFile(path.join(tmp, 'turn.secret'), `${secret}\n`, { mode: 0o600 });
  await startCoturn();
  const port = await freePort();
  const profile = await writeProfile(PROFILE, {
    port,
    stateDir: path.join(tmp, 'state'),
    dir: tmp,
    vars: {
      ALLOWLIST: path.join(tmp, 'ids', 'allowlist.json'),
      MEMBER1: members[0].keyHash,
      MEMBER2: members[1].keyHash,
      TURN_PORT: String(turnPort),
      TURN_SECRET_FILE: path.join(tmp, 'turn.secret'),
    },
  });
  d = await startParleyd({ profile, port, logFile: path.join(tmp, 'parleyd.log') });
  browser = await launchBrowser({ args: MEDIA_ARGS });
});

after(async () => {
  await browser?.close().catch(() => {});
  await d?.stop();
  if (turn && turn.exitCode === null) {
    turn.kill('SIGTERM');
    await new Promise((r) => { turn.once('exit', r); setTimeout(r, 3000); });
  }
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

// A page at parley's origin with an authenticated relay socket and a CallClient (call.js).
async function openCaller(m) {
  const t0 = Date.now();
  const ctx = await browser.newContext();
  await ctx.grantPermissions(['camera', 'microphone'], { origin: d.url });
  const page = await ctx.newPage();
  page.on('console', (msg) => { if (process.env.PARLEY_TEST_VERBOSE) console.log(`[page ${m.keyHash.slice(0, 6)}]`, msg.text()); });
  await page.goto(`${d.url}/`);
  const tGoto = Date.now() - t0;
  const keyHash = await page.evaluate(async ({ seed, publicKey }) => {
    const b64 = (u8) => btoa(String.fromCharCode(...u8));
    const unb64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
    // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410).
    const pkcs8 = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
      0x04, 0x22, 0x04, 0x20, ...unb64(seed)]);
    const key = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519' }, false, ['sign']);
    const handlers = new Map();
    const ws = new WebSocket(`ws://${location.host}/ws`);
    const frames = [];
    window.parleyFrames = frames;
    const socket = {
      on(type, fn) {
        if (!handlers.has(type)) handlers.set(type, new Set());
        handlers.get(type).add(fn);
        return () => handlers.get(type).delete(fn);
      },
      send(obj) { ws.send(JSON.stringify(obj)); return true; },
    };
    const authed = await new Promise((resolve, reject) => {
      ws.onerror = () => reject(new Error('socket error'));
      ws.onclose = (e) => reject(new Error(`closed ${e.code}`));
      ws.onmessage = async (ev) => {
        const f = JSON.parse(ev.data);
        frames.push(f);
        if (f.type === 'challenge') {
          const sig = new Uint8Array(await crypto.subtle.sign('Ed25519', key,
            new TextEncoder().encode(`parley-relay-auth-v1\n${f.nonce}`)));
          ws.send(JSON.stringify({ type: 'auth', publicKey, signature: b64(sig) }));
        } else if (f.type === 'authed') {
          resolve(f.keyHash);
        } else {
          for (const fn of handlers.get(f.type) ?? []) fn(f);
        }
      };
    });
    ws.onclose = null;
    const { CallClient } = await import('/call.js');
    window.call = new CallClient({ socket, keyHash: authed, iceTransportPolicy: 'relay' });
    return authed;
  }, m);
  if (process.env.PARLEY_TEST_VERBOSE) console.log(`caller ready: goto ${tGoto} ms, total ${Date.now() - t0} ms`);
  assert.equal(keyHash, m.keyHash);
  return { page, ctx };
}

async function waitFor(page, fn, arg, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await page.evaluate(fn, arg);
    if (last?.ok) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const relayedFlow = async () => {
  const pairs = await window.call.selectedPairs();
  const ok = pairs.length === 1 && pairs.every((p) => p.local === 'relay' && p.remote === 'relay'
    && p.bytesSent > 0 && p.bytesReceived > 0 && p.connection === 'connected');
  return { ok, pairs };
};

// ICE gathering with iceTransportPolicy "relay": how many relay candidates coturn gave.
const relayCandidates = async (iceServers) => {
  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
  pc.createDataChannel('probe');
  const cands = [];
  pc.onicecandidate = (e) => { if (e.candidate?.candidate) cands.push(e.candidate.candidate); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') resolve();
    pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    setTimeout(resolve, 8000);
  });
  pc.close();
  return cands.filter((c) => / typ relay /.test(c)).length;
};

test('two members call through coturn with parley-issued credentials; ACL and expiry enforced', { skip: missing ?? false, timeout: 150000 }, async () => {
  const [m1, m2, m3] = members;
  const t0 = Date.now();
  const mark = (what) => console.log(`${what}: ${Date.now() - t0} ms`);
  const a = await openCaller(m1);
  const b = await openCaller(m2);
  try {
    // TURN REST credentials from parley: "<expiry>:<opaque id>", HMAC-SHA1 with coturn's secret.
    const cred = await a.page.evaluate(() => window.call.turn());
    const [expiry, opaque] = cred.username.split(':');
    const now = Math.floor(Date.now() / 1000);
    assert.ok(Number(expiry) > now + 500 && Number(expiry) <= now + 601, cred.username);
    assert.ok(opaque.length > 0 && !cred.username.includes(m1.keyHash));
    assert.equal(cred.credential, crypto.createHmac('sha1', secret).update(cred.username).digest('base64'));

    const first = await a.page.evaluate((allowed) => window.call.join('call-test', allowed, { video: true }), [m1.keyHash, m2.keyHash]);
    assert.deepEqual(first, []);
    const second = await b.page.evaluate((allowed) => window.call.join('call-test', allowed, { video: true }), [m1.keyHash, m2.keyHash]);
    assert.equal(second.length, 1);
    assert.equal(second[0].keyHash, m1.keyHash);

    mark('joined');
    const sa = await waitFor(a.page, relayedFlow, null, 30000, 'relay/relay pair with traffic (caller A)');
    const sb = await waitFor(b.page, relayedFlow, null, 30000, 'relay/relay pair with traffic (caller B)');
    console.log('selected pairs:', JSON.stringify(sa.pairs), JSON.stringify(sb.pairs));
    mark('relay pairs with traffic');
    await saveScreenshot(a.page, 'signaling-call-a').catch(() => {});

    // Media arrived: B receives A's fake camera video.
    const video = await waitFor(b.page, async () => {
      const stats = [];
      for (const p of window.call.peers.values()) (await p.pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') stats.push(s.bytesReceived); });
      return { ok: stats.some((n) => n > 10000), stats };
    }, null, 20000, 'inbound video');
    assert.ok(video.ok);
    mark('video received');

    // call_state reaches the other member as peer_call_state.
    await a.page.evaluate(() => window.call.setMuted(true));
    await waitFor(b.page, () => {
      const p = [...window.call.peers.values()][0];
      return { ok: p?.state?.muted === true, state: p?.state };
    }, null, 5000, 'peer_call_state muted');

    // A circle member outside the room's ACL is refused, whatever member list it presents,
    // and cannot signal the members.
    const c = await openCaller(m3);
    try {
      const refused = await c.page.evaluate(async (allowed) => {
        try { await window.call.join('call-test', allowed); return 'joined'; } catch (e) { return e.message; }
      }, [m1.keyHash, m3.keyHash]);
      assert.equal(refused, 'Not allowed to join this call.');
      mark('non-member refused');
      const aId = await b.page.evaluate(() => [...window.call.peers.keys()][0]);
      const before = await a.page.evaluate(() => window.parleyFrames.filter((f) => f.type === 'signal').length);
      const err = await c.page.evaluate(async (to) => {
        const p = window.call.next('error', 5000);
        window.call.emit('signal', { to, type: 'offer', sdp: { type: 'offer', sdp: 'v=0\r\n' } });
        return (await p).error;
      }, aId);
      assert.equal(err, 'recipient is not in your call');
      await new Promise((r) => setTimeout(r, 300));
      const afterCount = await a.page.evaluate(() => window.parleyFrames.filter((f) => f.type === 'signal').length);
      assert.equal(afterCount, before, 'nothing relayed from a non-member');

      // coturn refuses credentials whose timestamp has passed; parley-issued ones work.
      const stale = `${Math.floor(Date.now() / 1000) - 60}:expired-probe`;
      const staleServers = [{ urls: cred.urls, username: stale, credential: crypto.createHmac('sha1', secret).update(stale).digest('base64') }];
      const fresh = await c.page.evaluate(() => window.call.turn());
      const freshServers = [{ urls: fresh.urls, username: fresh.username, credential: fresh.credential }];
      assert.equal(await c.page.evaluate(relayCandidates, staleServers), 0, 'expired credentials must get no relay candidate');
      mark('expired credentials refused');
      assert.ok(await c.page.evaluate(relayCandidates, freshServers) >= 1, 'fresh credentials get a relay candidate');
      mark('fresh credentials allocate');
    } finally {
      await c.ctx.close();
    }

    // Leaving: the other member hears peer_left; the last one out gets last_to_leave.
    assert.equal(await a.page.evaluate(() => window.call.leave()), false);
    await waitFor(b.page, () => ({ ok: window.call.peers.size === 0 }), null, 5000, 'peer_left');
    assert.equal(await b.page.evaluate(() => window.call.leave()), true);
    mark('left');
  } finally {
    await a.ctx.close();
    await b.ctx.close();
  }
});

// The web client's call view (call.js in the relay client): two members load their identity
// files, call each other from the call button (Relay's derived DM room), turn the camera on,
// mute, and hang up.
test('call view in the relay web client: call, camera, mute, hang up', { skip: missing ?? false, timeout: 150000 }, async () => {
  const open = async (i) => {
    const ctx = await browser.newContext();
    await ctx.grantPermissions(['camera', 'microphone'], { origin: d.url });
    const page = await ctx.newPage();
    await page.goto(`${d.url}/`);
    await page.waitForSelector('body[data-state="locked"]', { timeout: 15_000 });
    await page.setInputFiles('#identity-file', path.join(tmp, 'ids', `identity-0${i}.json`));
    await page.waitForSelector('body[data-state="ready"]', { timeout: 30_000 });
    await page.waitForSelector('body[data-live="ws"]', { timeout: 15_000 });
    await page.waitForSelector('#call:not([hidden]) .call-start', { timeout: 10_000 });
    return { page, ctx };
  };
  const [m1, m2] = members;
  const a = await open(1);
  const b = await open(2);
  try {
    await a.page.selectOption('#call .call-pick', m2.keyHash);
    await b.page.selectOption('#call .call-pick', m1.keyHash);
    await a.page.click('#call .call-start');
    await a.page.waitForSelector('#call .call-status:has-text("In call")');
    await b.page.click('#call .call-start');
    // Each side shows its own tile and the other's.
    for (const p of [a.page, b.page]) {
      await p.waitForFunction(() => document.querySelectorAll('#call .call-tile').length === 2, null, { timeout: 20_000 });
      await p.waitForSelector('#call .call-status:has-text("1 other")');
    }
    // Camera on at A: B's tile for A gets a playing video track.
    await a.page.click('#call button:has-text("Camera")');
    await b.page.waitForFunction(() => [...document.querySelectorAll('#call .call-tile video')]
      .some((v) => !v.muted && v.videoWidth > 0), null, { timeout: 30_000 });
    assert.equal(await a.page.getAttribute('#call button:has-text("Camera")', 'aria-pressed'), 'true');
    // Mute at A shows on B's caption (peer_call_state).
    await a.page.click('#call button:has-text("Mute")');
    await b.page.waitForSelector('#call figcaption:has-text("(muted)")', { timeout: 10_000 });
    await b.page.click('#call button:has-text("Deafen")');
    assert.equal(await b.page.getAttribute('#call button:has-text("Deafen")', 'aria-pressed'), 'true');
    await saveScreenshot(b.page, 'signaling-call-view').catch(() => {});
    // Hang up at A: B is alone again.
    await a.page.click('#call .call-hangup');
    await b.page.waitForFunction(() => document.querySelectorAll('#call .call-tile').length === 1, null, { timeout: 10_000 });
    await b.page.click('#call .call-hangup');
    await b.page.waitForFunction(() => document.querySelectorAll('#call .call-tile').length === 0, null, { timeout: 10_000 });
  } finally {
    await a.ctx.close();
    await b.ctx.close();
  }
});
