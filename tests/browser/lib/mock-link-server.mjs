// Minimal stand-in for parleyd's link-room endpoints, so the browser client and
// its Playwright test can run before (and independently of) the C++ server.
// It implements the same wire protocol the client relies on:
//
//   GET /new_chat, /room/<id>        index.html (+ strict security headers)
//   GET /app.js /app.css /<name>.js  static files from plugins/transport-ws/web/link
//   GET /healthz                     "ok"
//   GET /api/room/<id>/info          {"exists","members","passwordRequired"}
//   WS  /ws/<id>?client=<clientId>   JSON text frames (see handleFrame)
//
// Usage: startMockLinkServer({port}) from a test, or
//        node lib/mock-link-server.mjs [--port 8787]  to click around by hand.

import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const WEB_ROOT = path.resolve(HERE, '../../../plugins/transport-ws/web/link');

export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; "
  + "img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; object-src 'none'; form-action 'none'; "
  + "require-trusted-types-for 'script'";

const SECURITY_HEADERS = {
  'Content-Security-Policy': CSP,
  'Cache-Control': 'no-store',
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
};

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const CLIENT_RE = /^[a-z0-9_-]{4,16}$/i;
const B64URL_RE = /^[A-Za-z0-9_-]+$/;
const MAX_FRAME = 64 * 1024;
const AUTH_TIMEOUT_MS = 10_000;

export async function startMockLinkServer({ port = 0, host = '127.0.0.1', historyLimit = 10, webRoot = WEB_ROOT, echoLog = false } = {}) {
  const logLines = [];
  const log = (line) => {
    const entry = `${new Date().toISOString()} ${line}`;
    logLines.push(entry);
    if (echoLog) console.log(entry);
  };

  const rooms = new Map(); // roomId -> { passwordHash, history: [], clients: Map<ws, clientId> }
  const roomOf = (id) => {
    let r = rooms.get(id);
    if (!r) rooms.set(id, (r = { passwordHash: null, history: [], clients: new Map() }));
    return r;
  };
  const exists = (r) => Boolean(r && (r.clients.size || r.history.length || r.passwordHash));
  const hashPw = (pw) => crypto.createHash('sha256').update(`parley-mock:${pw}`).digest();
  const pwMatches = (r, pw) => typeof pw === 'string' && crypto.timingSafeEqual(r.passwordHash, hashPw(pw));

  // ---- HTTP

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const send = (status, body, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type });
      res.end(body);
    };
    log(`http ${req.method} ${url.pathname}`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed');

    if (url.pathname === '/healthz') return send(200, 'ok');

    let m = /^\/api\/room\/([^/]+)\/info$/.exec(url.pathname);
    if (m) {
      const id = decodeURIComponent(m[1]);
      if (!ROOM_RE.test(id)) return send(400, JSON.stringify({ error: 'invalid_room' }), 'application/json');
      const r = rooms.get(id);
      return send(200, JSON.stringify({
        exists: exists(r), members: r ? r.clients.size : 0, passwordRequired: Boolean(r?.passwordHash),
      }), 'application/json');
    }

    let file = null;
    if (url.pathname === '/new_chat' || ((m = /^\/room\/([^/]+)\/?$/.exec(url.pathname)) && ROOM_RE.test(m[1]))) {
      file = 'index.html';
    } else if (/^\/[a-z][a-z0-9_-]*\.(js|css)$/.test(url.pathname)) {
      file = url.pathname.slice(1);
    }
    if (file) {
      try {
        const body = await fs.readFile(path.join(webRoot, file));
        return send(200, req.method === 'HEAD' ? undefined : body, TYPES[path.extname(file)]);
      } catch {
        return send(404, 'not found');
      }
    }
    return send(200, 'API OK'); // like Secure Chat: everything else is a stub
  });

  // ---- WebSocket

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME });

  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url, 'http://x');
    const m = /^\/ws\/([^/]+)$/.exec(url.pathname);
    const roomId = m ? decodeURIComponent(m[1]) : '';
    const clientId = url.searchParams.get('client') ?? '';
    // Cross-site WebSocket hijacking guard: browsers always send Origin.
    const origin = req.headers.origin;
    const sameOrigin = !origin || origin === `http://${req.headers.host}`;
    if (!ROOM_RE.test(roomId) || !CLIENT_RE.test(clientId) || !sameOrigin) {
      log(`ws reject room=${roomId} client=${clientId} origin=${origin}`);
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, roomId, clientId));
  });

  const sendJson = (ws, obj) => { if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(obj)); };
  const broadcast = (room, obj, except = null) => {
    for (const ws of room.clients.keys()) if (ws !== except) sendJson(ws, obj);
  };
  const fail = (ws, code, message) => {
    sendJson(ws, { type: 'error', code, message });
    ws.close(1008, code);
  };

  function onConnection(ws, roomId, clientId) {
    const room = roomOf(roomId);
    const conn = { joined: false, createdRoom: !exists(room), frames: 0 };
    log(`ws open room=${roomId} client=${clientId} created=${conn.createdRoom}`);

    const join = () => {
      conn.joined = true;
      room.clients.set(ws, clientId);
      const members = room.clients.size;
      sendJson(ws, { type: 'history', messages: room.history });
      sendJson(ws, { type: 'system', event: 'connected', clientId, members });
      broadcast(room, { type: 'system', event: 'joined', clientId, members }, ws);
    };

    // Password rooms: nothing is sent until a correct auth frame arrives.
    let authTimer = null;
    if (room.passwordHash) {
      authTimer = setTimeout(() => fail(ws, 'auth_required', 'this room requires a password'), AUTH_TIMEOUT_MS);
    } else {
      join();
    }

    ws.on('message', (data, isBinary) => {
      conn.frames++;
      if (isBinary) return fail(ws, 'bad_frame', 'text frames only');
      let f;
      try { f = JSON.parse(data.toString('utf8')); } catch { return fail(ws, 'bad_json', 'invalid JSON'); }
      if (!f || typeof f !== 'object') return fail(ws, 'bad_frame', 'expected an object');
      // Never log the password; everything else in a frame is ciphertext anyway.
      const shown = f.type === 'auth' ? JSON.stringify({ ...f, password: '<redacted>' }) : data.toString('utf8');
      log(`ws recv room=${roomId} client=${clientId} ${shown.slice(0, 300)}`);
      handleFrame(f);
    });

    function handleFrame(f) {
      if (!conn.joined) {
        // Only reachable for password rooms: first frame must be auth.
        clearTimeout(authTimer);
        if (f.type !== 'auth') return fail(ws, 'auth_required', 'this room requires a password');
        if (!pwMatches(room, f.password)) {
          log(`ws auth failed room=${roomId} client=${clientId}`);
          return fail(ws, 'bad_password', 'wrong room password');
        }
        sendJson(ws, { type: 'auth_ok' });
        return join();
      }
      switch (f.type) {
        case 'auth': {
          // Joined without a password: honour create only as the connection that
          // brought the room into existence, on its very first frame.
          if (typeof f.password !== 'string' || !f.password || f.password.length > 256) {
            return fail(ws, 'bad_password', 'invalid password');
          }
          if (f.create === true && conn.createdRoom && conn.frames === 1 && !room.passwordHash && room.history.length === 0) {
            room.passwordHash = hashPw(f.password);
            log(`ws room=${roomId} password set by creator ${clientId}`);
          } else if (room.passwordHash && !pwMatches(room, f.password)) {
            return fail(ws, 'bad_password', 'wrong room password');
          }
          return sendJson(ws, { type: 'auth_ok' });
        }
        case 'message': {
          const { iv, ciphertext, to } = f;
          if (typeof iv !== 'string' || iv.length !== 16 || !B64URL_RE.test(iv)
              || typeof ciphertext !== 'string' || !ciphertext || !B64URL_RE.test(ciphertext)) {
            return sendJson(ws, { type: 'error', code: 'bad_message', message: 'iv/ciphertext must be base64url' });
          }
          const env = { type: 'message', from: clientId, iv, ciphertext, sentAt: Date.now() };
          if (typeof to === 'string') {
            for (const [peer, id] of room.clients) if (id === to && peer !== ws) sendJson(peer, { ...env, to });
            return;
          }
          room.history.push(env);
          if (room.history.length > historyLimit) room.history.splice(0, room.history.length - historyLimit);
          return broadcast(room, env, ws); // no echo to the sender
        }
        case 'clear_history':
          room.history = [];
          broadcast(room, { type: 'history_cleared', by: clientId });
          return broadcast(room, { type: 'system', event: 'history_cleared', clientId, members: room.clients.size, text: 'History was cleared' });
        default:
          return sendJson(ws, { type: 'error', code: 'unknown_type', message: `unknown frame type ${String(f.type).slice(0, 32)}` });
      }
    }

    ws.on('close', () => {
      clearTimeout(authTimer);
      log(`ws close room=${roomId} client=${clientId}`);
      if (!conn.joined) return;
      room.clients.delete(ws);
      broadcast(room, { type: 'system', event: 'left', clientId, members: room.clients.size });
    });
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actualPort = server.address().port;
  const url = `http://${host}:${actualPort}`;
  log(`mock link server listening on ${url}`);

  return {
    url,
    port: actualPort,
    logs: () => logLines.join('\n'),
    async stop() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

// CLI: node lib/mock-link-server.mjs [--port N]
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const port = i > 0 ? Number(process.argv[i + 1]) : 8787;
  const srv = await startMockLinkServer({ port, echoLog: true });
  console.log(`open ${srv.url}/new_chat`);
  process.on('SIGINT', async () => { await srv.stop(); process.exit(0); });
}
