// Reusable pieces for parley's browser tests: a real Debian Chromium driven by
// playwright-core (which never downloads browsers), a parleyd launcher that
// waits for /healthz, profile templating and screenshots.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const BROWSER_TESTS_DIR = path.resolve(HERE, '..');

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic',
];

export const chromiumPath = () => process.env.CHROMIUM || '/usr/bin/chromium';
export const haveChromium = () => fs.existsSync(chromiumPath());

// Debian's /usr/bin/chromium is a shell wrapper; Playwright drives it fine over
// CDP. headless: false stops Playwright adding its own --headless flag (we pass
// ours in CHROMIUM_ARGS so the exact command line is visible in one place).
export async function launchBrowser({ args = [], ...opts } = {}) {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: false,
    args: [...CHROMIUM_ARGS, ...args],
    timeout: 60_000,
    ...opts,
  });
}

// A TCP port that was free a moment ago (small race accepted: tests only).
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Copies a profile template with @PORT@ / @STATE@ (and any extra @KEY@ given
// in `vars`) substituted; returns the path of the written file.
export async function writeProfile(templatePath, { port, stateDir, vars = {}, dir } = {}) {
  const outDir = dir ?? await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-profile-'));
  let text = await fsp.readFile(templatePath, 'utf8');
  const all = { PORT: String(port), STATE: stateDir, ...vars };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) text = text.split(`@${k}@`).join(v);
  const out = path.join(outDir, path.basename(templatePath).replace(/\.in$|\.template$/, ''));
  await fsp.writeFile(out, text);
  return out;
}

// Spawns $PARLEYD. `args` defaults to [profile]. Resolves once
// GET http://127.0.0.1:<port>/healthz answers 200 with a body starting "ok" and the kernel
// logged that the whole profile runs; rejects (with the collected output) if the process
// exits first or times out.
export async function startParleyd({
  profile, port, env = {}, args, bin = process.env.PARLEYD, timeoutMs = 20_000, logFile, cwd,
} = {}) {
  if (!bin) throw new Error('PARLEYD is not set (path to the parleyd binary)');
  if (!port) throw new Error('startParleyd: port is required (the one the profile listens on)');
  const argv = args ?? [profile];
  const chunks = [];
  const logStream = logFile ? fs.createWriteStream(logFile) : null;
  const child = spawn(bin, argv, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const collect = (tag) => (buf) => {
    chunks.push(buf.toString('utf8'));
    logStream?.write(buf);
    if (process.env.PARLEYD_ECHO) process[tag].write(buf);
  };
  child.stdout.on('data', collect('stdout'));
  child.stderr.on('data', collect('stderr'));
  const logs = () => chunks.join('');

  let exited = null;
  const exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));
  child.on('error', (err) => { exited = { error: err }; });

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) throw new Error(`parleyd exited before becoming healthy (${JSON.stringify(exited)}):\n${logs()}`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.ok && (await res.text()).trim().startsWith('ok')) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`parleyd not healthy after ${timeoutMs} ms:\n${logs()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // Healthy is one listener; a plugin after it may still fail to start (and parleyd exit 1).
  // The kernel's "running" line comes once every instance started (logged at level info).
  while (!exited && !/' running \(/.test(logs()) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
  }
  if (exited) throw new Error(`parleyd exited while starting (${JSON.stringify(exited)}):\n${logs()}`);

  return {
    url,
    port,
    pid: child.pid,
    logs,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exitPromise;
        clearTimeout(timer);
      }
      await new Promise((r) => (logStream ? logStream.end(r) : r()));
      return exited;
    },
  };
}

export function artifactsDir() {
  const dir = process.env.ARTIFACTS_DIR || path.join(BROWSER_TESTS_DIR, 'artifacts');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export async function saveScreenshot(page, name, opts = {}) {
  const file = path.join(artifactsDir(), `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.png`);
  await page.screenshot({ path: file, ...opts });
  return file;
}

// Sends raw HTTP/1.1 requests one after another on ONE connection and reports, for each, the
// status, its Connection header and whether the server then closed. A response that says
// keep-alive must serve the next request; one that says close must be followed by EOF —
// otherwise clients with connection pools (undici's fetch) send into a dying socket.
export function httpOnOneConnection(port, requests, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const results = [];
    let buf = Buffer.alloc(0);
    let ended = false;
    let waitingForEnd = false;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms; got ${JSON.stringify(results)}`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(results);
    };
    const sendNext = () => {
      if (results.length === requests.length) return finish();
      sock.write(requests[results.length]);
    };
    const parse = () => {
      const headEnd = buf.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const head = buf.subarray(0, headEnd).toString('latin1');
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < headEnd + 4 + length) return;
      buf = buf.subarray(headEnd + 4 + length);
      const status = Number(head.split(' ')[1]);
      const connection = (/\r\nconnection:\s*([^\r]*)/i.exec(head)?.[1] ?? '').toLowerCase();
      results.push({ status, connection, closed: false });
      if (connection === 'close') waitingForEnd = true;
      else sendNext();
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      parse();
    });
    sock.on('end', () => {
      ended = true;
      if (results.length) results[results.length - 1].closed = true;
      if (waitingForEnd || results.length < requests.length) finish();
    });
    sock.on('error', (e) => {
      if (ended) return;
      if (results.length) results[results.length - 1].closed = true;
      if (waitingForEnd || results.length) return finish();
      clearTimeout(timer);
      reject(e);
    });
    sock.on('connect', sendNext);
  });
}
