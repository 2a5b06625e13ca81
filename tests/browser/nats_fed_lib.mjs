// Helpers for the federation tests: real nats-server processes, a minimal NATS protocol client
// (the text protocol is a few lines; no npm package needed) to observe and forge park traffic,
// and bench WebSocket clients speaking BenchTalks' frames.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { freePort } from './lib/harness.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function until(what, fn, timeoutMs = 10_000, stepMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(stepMs);
  }
}

export function natsServerBin() {
  for (const p of [process.env.NATS_SERVER, '/usr/sbin/nats-server', '/usr/bin/nats-server']) {
    if (p && fs.existsSync(p)) return p;
  }
  return null;
}

// One nats-server on loopback. `routes` joins a cluster (no_advertise keeps it on 127.0.0.1).
// `extra` is appended to the config (tls {…}, authorization {…}).
export async function startNats({ dir, name, port, clusterPort, routes = [], extra = '' }) {
  port ??= await freePort();
  const conf = path.join(dir, `${name}.conf`);
  let text = `server_name: ${name}\nlisten: 127.0.0.1:${port}\nmax_payload: 16MB\n${extra}\n`;
  if (clusterPort) {
    text += `cluster {\n  name: park\n  listen: 127.0.0.1:${clusterPort}\n  no_advertise: true\n`;
    text += `  routes: [${routes.map((p) => `nats://127.0.0.1:${p}`).join(', ')}]\n}\n`;
  }
  await fsp.writeFile(conf, text);
  const out = [];
  const child = spawn(natsServerBin(), ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (b) => out.push(b.toString()));
  child.stderr.on('data', (b) => out.push(b.toString()));
  let exited = false;
  const exit = new Promise((r) => child.on('exit', () => { exited = true; r(); }));
  await until(`nats-server ${name} on ${port}`, async () => {
    if (exited) throw new Error(`nats-server ${name} exited:\n${out.join('')}`);
    return new Promise((res) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); res(true); });
      s.on('error', () => res(false));
    });
  });
  return {
    port, clusterPort, name, url: `nats://127.0.0.1:${port}`, logs: () => out.join(''),
    async stop() {
      if (!exited) { child.kill('SIGTERM'); await Promise.race([exit, sleep(5000)]); }
      if (!exited) { child.kill('SIGKILL'); await exit; }
    },
  };
}

// Minimal NATS client: CONNECT, PING/PONG, SUB, PUB, MSG (no headers, no reply subjects).
export class MiniNats {
  static connect(port) {
    return new Promise((resolve, reject) => {
      const nc = new MiniNats();
      nc.sock = net.connect(port, '127.0.0.1');
      nc.sock.on('error', (e) => { if (!nc.ready) reject(e); });
      nc.sock.on('data', (b) => nc.onData(b));
      nc.onInfo = () => {
        nc.sock.write('CONNECT {"verbose":false,"pedantic":false,"name":"fed-test","lang":"node","version":"0"}\r\n');
        nc.flush().then(() => { nc.ready = true; resolve(nc); }, reject);
      };
    });
  }
  constructor() { this.buf = Buffer.alloc(0); this.subs = new Map(); this.sid = 0; this.pongs = []; }
  onData(b) {
    this.buf = Buffer.concat([this.buf, b]);
    for (;;) {
      const eol = this.buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = this.buf.subarray(0, eol).toString();
      if (line.startsWith('MSG ')) {
        const parts = line.split(' ');
        const len = Number(parts[parts.length - 1]);
        if (this.buf.length < eol + 2 + len + 2) return;
        const data = Buffer.from(this.buf.subarray(eol + 2, eol + 2 + len));
        this.buf = this.buf.subarray(eol + 2 + len + 2);
        this.subs.get(parts[2])?.(parts[1], data);
        continue;
      }
      this.buf = this.buf.subarray(eol + 2);
      if (line.startsWith('INFO')) this.onInfo?.(), this.onInfo = null;
      else if (line === 'PING') this.sock.write('PONG\r\n');
      else if (line === 'PONG') this.pongs.shift()?.();
      else if (line.startsWith('-ERR')) this.lastError = line;
    }
  }
  flush() {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('nats flush timeout')), 5000);
      this.pongs.push(() => { clearTimeout(t); resolve(); });
      this.sock.write('PING\r\n');
    });
  }
  sub(subject, fn) {
    const sid = String(++this.sid);
    this.subs.set(sid, fn);
    this.sock.write(`SUB ${subject} ${sid}\r\n`);
    return this.flush();
  }
  pub(subject, data) {
    const b = Buffer.isBuffer(data) ? data : Buffer.from(data);
    this.sock.write(Buffer.concat([Buffer.from(`PUB ${subject} ${b.length}\r\n`), b, Buffer.from('\r\n')]));
  }
  close() { this.sock.destroy(); }
}

// A BenchTalks web client's side of the wire: frames in, a queue of frames out.
export class BenchClient {
  static async open(url) {
    const c = new BenchClient();
    c.ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws`);
    c.ws.on('message', (d) => { const m = JSON.parse(d.toString()); c.frames.push(m); c.wake?.(); });
    await new Promise((res, rej) => { c.ws.once('open', res); c.ws.once('error', rej); });
    return c;
  }
  constructor() { this.frames = []; }
  send(obj) { this.ws.send(JSON.stringify(obj)); }
  // Next frame matching `pred` (consumed), or throws after timeoutMs.
  async next(pred = () => true, timeoutMs = 10_000, what = 'a frame') {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex(pred);
      if (i >= 0) return this.frames.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; have ${JSON.stringify(this.frames)}`);
      await new Promise((r) => { this.wake = r; setTimeout(r, Math.min(left, 100)); });
    }
  }
  has(pred) { return this.frames.some(pred); }
  async join(room, adminToken) {
    const adminHash = adminToken ? sha256hex(Buffer.from(adminToken, 'base64')) : '';
    this.send({ type: 'join', roomId: room, adminHash });
    const w = await this.next((m) => m.type === 'welcome', 10_000, 'welcome');
    this.id = w.senderId;
    return w;
  }
  close() { this.ws.close(); }
}

export const sha256hex = (b) => crypto.createHash('sha256').update(b).digest('hex');
export const newAdminToken = () => crypto.randomBytes(32).toString('base64');

export async function metrics(metricsPort) {
  const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  const text = await r.text();
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    // Without the kernel's instance="…" label: one transport-nats instance per parleyd here.
    const name = line.slice(0, sp).replace(/instance="[^"]*",?/, '').replace('{}', '');
    out[name] = (out[name] ?? 0) + Number(line.slice(sp + 1));
  }
  return out;
}

export async function tmpDir(prefix) {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

// A throwaway CA and a server certificate for 127.0.0.1 (openssl), for NATS TLS tests.
export function makeCerts(dir) {
  const run = (args) => {
    const r = spawnSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=parley test CA', '-keyout', 'ca.key', '-out', 'ca.pem']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1',
    '-keyout', 'server.key', '-out', 'server.csr']);
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1',
    '-extfile', 'san.ext', '-out', 'server.pem']);
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') };
}
