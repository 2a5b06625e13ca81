// Shared pieces of the ops integration tests (ops_*.test.mjs): real parleyd processes started
// from profiles in temp dirs, `parley ctl` runs, plain WebSocket clients (npm ws from
// tests/browser), and cleanup of every process a test started.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = path.resolve(HERE, '../..');
// The npm packages of the test suite live in tests/browser (scripts/deps.sh test installs them).
export const WebSocket = createRequire(path.join(SOURCE_DIR, 'tests/browser/package.json'))('ws');

export const PARLEYD = process.env.PARLEYD;
export const PARLEY = process.env.PARLEY_CLI;
if (!PARLEYD || !PARLEY) throw new Error('PARLEYD and PARLEY_CLI must name the built binaries');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tempDir(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `parley-${tag}-`));
}

// A TCP port that was free a moment ago on 127.0.0.1 (tests only: a small race is accepted).
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// The environment for parleyd: without BenchTalks' compat variables, which would override ports.
function daemonEnv(extra = {}) {
  const env = { ...process.env, ...extra };
  for (const k of ['PORT', 'MAX_FILE_SIZE', 'BENCH_ID', 'NATS_PEERS']) delete env[k];
  return env;
}

const live = new Set();
process.on('exit', () => {
  for (const p of live) try { p.kill('SIGKILL'); } catch { /* gone */ }
});

// Starts parleyd on `profile`; returns a handle with the exit promise and collected output.
export function spawnParleyd(profile, { args = [], cwd, env } = {}) {
  const child = spawn(PARLEYD, [...args, profile], { cwd, env: daemonEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const chunks = [];
  child.stdout.on('data', (b) => chunks.push(b.toString()));
  child.stderr.on('data', (b) => chunks.push(b.toString()));
  const d = {
    child,
    pid: child.pid,
    exit: null,
    logs: () => chunks.join(''),
  };
  d.exited = new Promise((resolve) => child.on('exit', (code, signal) => {
    live.delete(child);
    d.exit = { code, signal };
    resolve(d.exit);
  }));
  d.stop = async (ms = 15000) => {
    if (d.exit) return d.exit;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), ms);
    const r = await d.exited;
    clearTimeout(t);
    return r;
  };
  return d;
}

// Resolves when GET /healthz on `port` says ok; throws (with the daemon's output) when the daemon
// exits first or after `ms`.
export async function waitHealthy(d, port, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (d.exit) throw new Error(`parleyd exited (${JSON.stringify(d.exit)}) before serving:\n${d.logs()}`);
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (r.ok) return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`parleyd not healthy on ${port} after ${ms} ms:\n${d.logs()}`);
    await sleep(100);
  }
}

// Reads <state>/<instance>.port written by transport-ws once it listens (port 0 profiles).
export async function portFile(d, file, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const t = fs.readFileSync(file, 'utf8').trim();
      if (t) return Number(t);
    } catch { /* not yet */ }
    if (d.exit) throw new Error(`parleyd exited (${JSON.stringify(d.exit)}) before ${file}:\n${d.logs()}`);
    if (Date.now() > deadline) throw new Error(`no ${file} after ${ms} ms:\n${d.logs()}`);
    await sleep(100);
  }
}

// Runs `parley ctl ARGS...`; returns {code, stdout, stderr, json (when --json and parseable)}.
export function ctl(args, { cwd, env, timeout = 40000 } = {}) {
  const r = spawnSync(PARLEY, ['ctl', ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout });
  let json;
  if (args.includes('--json')) try { json = JSON.parse(r.stdout); } catch { /* not JSON */ }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
}

export function runParley(args, opts = {}) {
  return spawnSync(PARLEY, args, { encoding: 'utf8', timeout: 30000, ...opts });
}

// A WebSocket client that records text frames and lets a test wait for one.
export function wsClient(url, opts = {}) {
  const ws = new WebSocket(url, opts);
  const frames = [];
  const waiters = [];
  const c = { ws, frames, closed: null };
  c.opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  c.opened.catch(() => {});
  c.closedP = new Promise((resolve) => ws.on('close', (code) => { c.closed = code; resolve(code); }));
  ws.on('error', () => {});
  ws.on('message', (data) => {
    const text = data.toString('utf8');
    frames.push(text);
    for (const w of [...waiters]) if (w.pred(text)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(text); }
  });
  c.send = (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m));
  // Waits for a frame matching pred that arrives after frame index `from` (default: any).
  c.wait = (pred, ms = 5000, from = 0) => {
    const hit = frames.slice(from).find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      waiters.push(w);
      setTimeout(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) { waiters.splice(i, 1); reject(new Error(`no matching frame within ${ms} ms (got ${frames.length} frames, closed ${c.closed})`)); }
      }, ms);
    });
  };
  c.close = () => { ws.close(); return c.closedP; };
  return c;
}

// Replaces every match of `re` (global) using fn; throws when it matched fewer than `min` times,
// so a test notices when a shipped profile no longer has the line it rewrites.
export function rewrite(text, re, fn, min = 1) {
  let n = 0;
  const out = text.replace(re, (...m) => { n++; return fn(...m); });
  if (n < min) throw new Error(`profile rewrite: ${re} matched ${n} times (< ${min})`);
  return out;
}
