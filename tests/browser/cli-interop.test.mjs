// Interop of the C++ CLI client (`parley chat`) with the link-room web client in real
// Chromium, both talking to a real parleyd: same invite link, same AES-256-GCM envelopes,
// same display names, password rooms, and the room key never showing up in the CLI's output.
//
//   $PARLEYD              parleyd binary, started with a copy of $PARLEY_LINK_PROFILE
//   $PARLEY_LINK_PROFILE  profile template (@PORT@, @STATE@), tests/browser/profiles/link-room.yaml.in
//   $PARLEY_CLI           the `parley` binary
//   $CHROMIUM             browser (default /usr/bin/chromium); artifacts in $ARTIFACTS_DIR
//   $PARLEY_REQUIRE_BROWSER=1  (set by ctest) anything missing is a failure, not a skip

import { describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import {
  launchBrowser, haveChromium, chromiumPath, startParleyd, freePort, writeProfile, saveScreenshot, artifactsDir,
} from './lib/harness.mjs';
import {
  newRecordedPage, screenshotSteps, waitForText, sendWithEnter, createRoomOn,
} from './lib/link-page.mjs';
import { displayName } from '../../plugins/transport-ws/web/link/names.js';

const CLI = process.env.PARLEY_CLI;
const skip = !haveChromium()
  ? `no Chromium at ${chromiumPath()} (set CHROMIUM)`
  : !(process.env.PARLEYD && process.env.PARLEY_LINK_PROFILE)
    ? 'PARLEYD and PARLEY_LINK_PROFILE not set'
    : !CLI || !fs.existsSync(CLI)
      ? `PARLEY_CLI (the parley binary) not set or missing: ${CLI ?? ''}`
      : false;
// Under ctest a missing browser, server or CLI is a failure, never a silent skip.
if (skip && process.env.PARLEY_REQUIRE_BROWSER === '1') throw new Error(`cannot run: ${skip}`);

const T = 90_000;
const TEXT_WAIT = 20_000; // for a message to show in a page
const nonce = crypto.randomBytes(4).toString('hex');
const TEXT = {
  cli: `from cli ${nonce}`,
  browser: `from browser ${nonce} — ünïcødé 👋`,
  pwCli: `protected from cli ${nonce}`,
  pwBrowser: `protected from browser ${nonce}`,
};
const PASSWORD = `cli horse ${nonce}`;

// Runs `parley chat ...`; resolves with the exit code, both outputs and the JSON lines of stdout.
function runCli(args, { env = {}, input, timeoutMs = 60_000, onEvent } = {}) {
  const child = spawn(CLI, ['chat', ...args], {
    env: { ...process.env, NO_COLOR: '1', ...env },
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let pending = '';
  const events = [];
  child.stdout.on('data', (b) => {
    stdout += b;
    pending += b;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        const ev = JSON.parse(line);
        events.push(ev);
        onEvent?.(ev);
      } catch { /* human output */ }
    }
  });
  child.stderr.on('data', (b) => { stderr += b; });
  if (input !== undefined) child.stdin.end(input);
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`parley chat did not exit in ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, events });
    });
  });
  return { child, done, events };
}

describe('parley chat CLI with the web client', { skip }, () => {
  let server;
  let browser;
  let stateDir;
  const pages = new Map();
  const frames = []; // {label, dir, url, payload} of the browser pages' sockets
  const outputs = []; // every CLI stdout/stderr, checked for secrets at the end
  const room = {};

  before(async () => {
    const port = await freePort();
    stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-cli-state-'));
    const profile = await writeProfile(process.env.PARLEY_LINK_PROFILE, { port, stateDir });
    server = await startParleyd({ profile, port, logFile: path.join(artifactsDir(), 'parleyd-cli-interop.log') });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (stateDir) await fsp.rm(stateDir, { recursive: true, force: true });
  });

  const newPage = (label) => newRecordedPage(browser, label, { pages, frames });
  const step = screenshotSteps(pages, { timeout: T, prefix: 'cli-' });

  const clientIdOf = (page, roomId) => page.evaluate((id) => new Promise((resolve, reject) => {
    const open = indexedDB.open('secure_chat_keys');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const get = open.result.transaction('room_keys').objectStore('room_keys').get(id);
      get.onerror = () => reject(get.error);
      get.onsuccess = () => resolve(get.result?.clientId ?? null);
    };
  }), roomId);

  // As link-room.test.mjs; the invite link gives the room id and key.
  async function createRoom(page, { password } = {}) {
    const { invite } = await createRoomOn(page, server.url, { password });
    const m = /\/room\/([A-Za-z0-9_-]{22})#([A-Za-z0-9_-]{43})$/.exec(invite);
    assert.ok(m, `unexpected invite link ${invite}`);
    return { invite, roomId: m[1], key: m[2], clientId: await clientIdOf(page, m[1]) };
  }

  const record = (r, label) => { outputs.push({ label, text: r.stdout + r.stderr }); return r; };
  const explain = (r) => `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

  step('CLI and browser exchange messages both ways', async () => {
    const a = await newPage('A');
    Object.assign(room, await createRoom(a));
    assert.match(room.clientId, /^[a-z0-9]{8}$/);

    const run = runCli([room.invite, '--send', TEXT.cli, '--wait-for', TEXT.browser, '--json', '--timeout', '60']);
    // The browser decrypts the CLI's message and names its sender as names.js does.
    await waitForText(a, TEXT.cli, 30_000);
    const ready = run.events.find((e) => e.type === 'ready');
    assert.ok(ready, 'CLI printed a ready event');
    assert.match(ready.clientId, /^[a-z0-9]{8}$/);
    assert.equal(ready.name, displayName(ready.clientId));
    room.cliId = ready.clientId;
    const fromCli = a.locator('#messages .msg').filter({ hasText: TEXT.cli });
    assert.equal(await fromCli.getAttribute('data-from'), room.cliId);
    assert.equal(await fromCli.locator('.name').textContent(), displayName(room.cliId));
    assert.equal(await fromCli.locator('.name.mismatch').count(), 0, 'the CLI puts its derived name inside the message');

    // The CLI's frame as the browser received it: the server's envelope around ciphertext only.
    const env = frames.filter((f) => f.label === 'A' && f.dir === 'recv').map((f) => JSON.parse(f.payload))
      .find((f) => f.type === 'message' && f.from === room.cliId);
    assert.ok(env, 'browser received the CLI message frame');
    assert.deepEqual(Object.keys(env).sort(), ['ciphertext', 'from', 'iv', 'sentAt', 'type']);
    assert.equal(Buffer.from(env.iv, 'base64url').length, 12);
    assert.ok(!/[=+/]/.test(env.iv + env.ciphertext), 'unpadded base64url');

    await sendWithEnter(a, TEXT.browser, TEXT_WAIT);
    const r = record(await run.done, 'cli-1');
    assert.equal(r.code, 0, explain(r));
    const got = r.events.find((e) => e.type === 'message' && e.text === TEXT.browser);
    assert.ok(got, `CLI printed the browser's message:\n${r.stdout}`);
    assert.equal(got.from, room.clientId);
    assert.equal(got.fromName, displayName(room.clientId));
    assert.equal(got.name, displayName(room.clientId));
    assert.equal(got.history, false);
    assert.match(got.id, /^[A-Za-z0-9_-]{8,64}$/);
    const sent = r.events.find((e) => e.type === 'sent');
    assert.equal(sent?.text, TEXT.cli);
    await saveScreenshot(a, 'cli-01-browser-and-cli');
  });

  step('a later CLI run decrypts the history; interactive mode sends stdin lines', async () => {
    const r = record(await runCli([room.invite, '--wait-for', TEXT.browser, '--json', '--timeout', '20']).done, 'cli-2');
    assert.equal(r.code, 0, explain(r));
    const history = r.events.filter((e) => e.type === 'message');
    assert.deepEqual(history.map((e) => e.text), [TEXT.cli, TEXT.browser]);
    assert.ok(history.every((e) => e.history === true));
    assert.deepEqual(history.map((e) => e.from), [room.cliId, room.clientId]);

    // Human output of interactive mode, fed from a pipe: "[HH:MM] Name: text", then it sends
    // the piped lines and leaves at end of input.
    const line = `piped line ${nonce}`;
    const h = record(await runCli([room.invite, '--timeout', '20'], { input: `${line}\n/quit\n` }).done, 'cli-3');
    assert.equal(h.code, 0, explain(h));
    assert.match(h.stdout, new RegExp(`^\\[\\d\\d:\\d\\d\\] ${displayName(room.clientId)}: ${TEXT.browser}$`, 'm'));
    assert.match(h.stdout, new RegExp(`^\\[\\d\\d:\\d\\d\\] You: ${line}$`, 'm'));
    await waitForText(pages.get('A'), line, TEXT_WAIT);
  });

  step('the CLI joins a password room (invite and password kept off the command line)', async () => {
    const p = await newPage('P');
    Object.assign(room, { pw: await createRoom(p, { password: PASSWORD }) });

    // Without a password (stdin is not a terminal): exit 4, and no socket was needed for that.
    const none = record(await runCli([room.pw.invite, '--send', 'x', '--timeout', '20']).done, 'cli-pw-none');
    assert.equal(none.code, 4, explain(none));
    const wrong = record(await runCli([room.pw.invite, '--send', 'x', '--timeout', '20'], {
      env: { PARLEY_ROOM_PASSWORD: `not ${PASSWORD}` },
    }).done, 'cli-pw-wrong');
    assert.equal(wrong.code, 4, explain(wrong));
    assert.match(wrong.stderr, /wrong room password/);

    const run = runCli(['-', '--send', TEXT.pwCli, '--wait-for', TEXT.pwBrowser, '--json', '--timeout', '60'], {
      env: { PARLEY_ROOM_PASSWORD: PASSWORD }, input: `${room.pw.invite}\n`,
    });
    await waitForText(p, TEXT.pwCli, 30_000);
    await sendWithEnter(p, TEXT.pwBrowser, TEXT_WAIT);
    const r = record(await run.done, 'cli-pw');
    assert.equal(r.code, 0, explain(r));
    assert.ok(r.events.some((e) => e.type === 'message' && e.text === TEXT.pwBrowser && e.from === room.pw.clientId));
    await saveScreenshot(p, 'cli-02-password-room');
  });

  step('a damaged or TLS invite is refused without echoing the key', async () => {
    const bad = record(await runCli([`${server.url}/room/${room.roomId}#${room.key.slice(0, 20)}`, '--send', 'x']).done, 'cli-bad');
    assert.equal(bad.code, 2, explain(bad));
    assert.match(bad.stderr, /damaged/);
    assert.ok(!bad.stderr.includes(room.key.slice(0, 20)));
    const tls = record(await runCli([room.invite.replace(/^http:/, 'https:'), '--send', 'x']).done, 'cli-tls');
    assert.equal(tls.code, 2, explain(tls));
    assert.match(tls.stderr, /TLS/);
  });

  step('wait-for times out with exit 1', async () => {
    const r = record(await runCli([room.invite, '--wait-for', `never ${nonce}`, '--json', '--timeout', '2']).done, 'cli-timeout');
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stderr, /timed out/);
  });

  step('keys and passwords never appear in CLI output or server logs', async () => {
    const secrets = [room.key, room.pw.key, PASSWORD];
    assert.ok(outputs.length >= 5);
    for (const { label, text } of outputs) {
      for (const s of secrets) assert.ok(!text.includes(s), `${label} output contains a secret`);
    }
    const logs = server.logs();
    assert.ok(logs.length > 0, 'server produced logs');
    for (const s of [...secrets, ...Object.values(TEXT)]) assert.ok(!logs.includes(s), `server log contains "${s}"`);
  });
});
