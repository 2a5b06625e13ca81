// Node peer of parley's benchmark (issue 10): an idiomatic npm `ws` relay. GET /ws/<room>
// joins <room>; each text message is relayed to the other members, no echo.
// `ws` comes from bench/peers/node/node_modules (npm ci there, see package.json) or, failing
// that, from tests/browser/node_modules (bench/run sets NODE_PATH; ESM ignores NODE_PATH, hence
// the createRequire below).
// Run: node relay.mjs PORT
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
let ws;
for (const base of [here, ...(process.env.NODE_PATH || '').split(':').filter(Boolean)]) {
  try {
    ws = createRequire(path.join(base, 'x.js'))('ws');
    break;
  } catch {}
}
if (!ws) {
  console.error('relay.mjs: npm package ws not found (npm ci in bench/peers/node or set NODE_PATH)');
  process.exit(3);
}

const port = Number(process.argv[2] || 8080);
const rooms = new Map();
const wss = new ws.WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (sock, req) => {
  const url = req.url || '';
  if (!url.startsWith('/ws/') || url.length === 4) return sock.close(1008);
  const room = url.slice(4).split('?')[0];
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(sock);
  sock.on('message', (data, isBinary) => {
    if (isBinary) return;
    for (const m of members) if (m !== sock && m.readyState === 1) m.send(data, { binary: false });
  });
  sock.on('close', () => {
    members.delete(sock);
    if (members.size === 0 && rooms.get(room) === members) rooms.delete(room);
  });
  sock.on('error', () => {});
});
wss.on('listening', () => console.error(`relay-node listening on 127.0.0.1:${port}`));
