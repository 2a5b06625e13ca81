// Helpers for the cluster-mode tests: a real nats-server with JetStream on loopback, parleyd
// nodes sharing it, and a small message-collecting WebSocket client.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { before, after } from 'node:test';
import WebSocket from 'ws';

import { freePort, startParleyd, writeProfile } from './harness.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A BenchTalks admin token and the hash a first joiner presents.
export function adminToken() {
  const raw = crypto.randomBytes(32);
  return { token: raw.toString('base64'), hash: crypto.createHash('sha256').update(raw).digest('hex') };
}
export const roomId = () => crypto.randomBytes(8).toString('hex');
export const wsUrl = (node) => `${node.url.replace('http', 'ws')}/ws`;

// Joins a bench room on `node`; the client (kept in `clients` for clean-up) carries its
// senderId and the welcome's member count.
export async function benchJoin(clients, node, room, adminHash = '') {
  const c = await client(wsUrl(node));
  clients.push(c);
  c.send({ type: 'join', roomId: room, adminHash });
  const w = await c.wait((f) => f.type === 'welcome', 'welcome');
  c.id = w.senderId;
  c.count = Number(w.payload);
  return c;
}

export async function until(fn, what, timeout = 5000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

// nats-server -js on 127.0.0.1:<free port>, store in a temp dir. Returns { port, stop } plus,
// for restart tests, `halt(signal)` (stop it, keep the port and JetStream store) and `restart()`
// (start it again on the same port with the same store).
export async function startNats() {
  const port = await freePort();
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-nats-'));
  const bin = process.env.NATS_SERVER || 'nats-server';
  let child;
  let exited = true;
  const launch = async () => {
    child = spawn(bin, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => { out += b; });
    child.stderr.on('data', (b) => { out += b; });
    exited = false;
    child.on('exit', () => { exited = true; });
    await until(async () => exited || portOpen(port), 'nats-server to listen', 10_000);
    if (exited) throw new Error(`nats-server exited:\n${out}`);
  };
  const halt = async (signal = 'SIGTERM') => {
    if (exited) return;
    child.kill(signal);
    await until(() => exited, 'nats-server to exit', 5000).catch(() => child.kill('SIGKILL'));
    await until(() => exited, 'nats-server to exit after SIGKILL', 5000);
  };
  await launch();
  return {
    port,
    halt,
    restart: launch,
    async stop() {
      await halt('SIGTERM').catch(() => {});
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

// One parleyd node from `template` with the given @KEY@s. Returns the harness handle plus
// `metric(name)` (sum over label sets, from its metrics port) and `kill9()`.
export async function startNode(template, vars) {
  const port = await freePort();
  const mport = await freePort();
  const stateDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-node-'));
  const profile = await writeProfile(template, { port, stateDir, vars: { MPORT: String(mport), ...vars } });
  const node = await startParleyd({ profile, port });
  node.stateDir = stateDir;
  node.metric = async (name) => {
    const res = await fetch(`http://127.0.0.1:${mport}/metrics`);
    const text = await res.text();
    let sum = null;
    for (const line of text.split('\n')) {
      const m = line.match(/^([a-z_]+)(\{[^}]*\})? (-?[0-9.e+]+)$/);
      if (m && m[1] === name) sum = (sum ?? 0) + Number(m[3]);
    }
    return sum;
  };
  node.kill9 = () => process.kill(node.pid, 'SIGKILL');
  return node;
}

// Waits until every node sees the others (parley_cluster_nodes == n-1 on each).
// Registers before/after hooks (call it inside a describe) that start one nats-server and
// `count` nodes of `template` forming the cluster `${prefix}<pid>` (more template variables in
// `vars`), then terminate the clients collected in `clients` and stop every node and the
// server. Returns { nats, nodes, clients }, filled once `before` ran.
export function clusterFixture({ template, count, prefix, vars = {} }) {
  const fx = { nats: null, nodes: [], clients: [] };
  before(async () => {
    fx.nats = await startNats();
    const all = { NATS: String(fx.nats.port), CLUSTER: `${prefix}${process.pid}`, ...vars };
    for (let i = 0; i < count; ++i) fx.nodes.push(await startNode(template, all));
    await clusterFormed(fx.nodes);
  });
  after(async () => {
    for (const c of fx.clients) c.ws.terminate();
    for (const n of fx.nodes) await n.stop().catch(() => {});
    await fx.nats?.stop();
  });
  return fx;
}

export async function clusterFormed(nodes, timeout = 10_000) {
  await until(async () => {
    for (const n of nodes) if ((await n.metric('parley_cluster_nodes')) !== nodes.length - 1) return false;
    return true;
  }, `${nodes.length} nodes to see each other`, timeout);
}

// A WebSocket that keeps every JSON frame it receives.
export async function client(url) {
  const ws = new WebSocket(url);
  const frames = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  const c = { closed: null }; // { code, reason } once the WebSocket is closed
  ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString() }; });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  return Object.assign(c, {
    ws,
    frames,
    send: (o) => ws.send(JSON.stringify(o)),
    of: (pred) => frames.filter(pred),
    wait: (pred, what, timeout) => until(() => frames.find(pred), what, timeout),
    close: () => new Promise((r) => { if (ws.readyState === WebSocket.CLOSED) r(); else { ws.once('close', r); ws.close(); } }),
  });
}
