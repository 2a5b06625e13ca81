// link-room on store-pg: history written before a parleyd restart is replayed after it.
// Run under tests/integration/pg_env.sh, which provides a throwaway cluster in PARLEY_TEST_PG.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

import { startParleyd, freePort, writeProfile } from './lib/harness.mjs';

if (!process.env.PARLEYD || !process.env.PARLEY_TEST_PG) throw new Error('PARLEYD and PARLEY_TEST_PG must be set');

async function history(base, room, id) {
  const ws = new WebSocket(`${base}/ws/${room}?client=${id}`);
  const h = await new Promise((resolve, reject) => {
    ws.on('message', (d) => { const f = JSON.parse(d.toString()); if (f.type === 'history') resolve(f); });
    ws.on('error', reject);
    setTimeout(() => reject(new Error('no history frame')), 5000);
  });
  return { ws, h };
}

test('history survives a parleyd restart with store-pg', async () => {
  const port = await freePort();
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-pg-'));
  const profile = await writeProfile(path.resolve('profiles/link-room-pg.yaml.in'),
    { port, stateDir, vars: { PG: process.env.PARLEY_TEST_PG } });
  const base = `ws://127.0.0.1:${port}`;
  let server = await startParleyd({ profile, port });
  const { ws } = await history(base, 'pgroom', 'aaaa1111');
  const iv = Buffer.alloc(12, 1).toString('base64url');
  for (const t of ['kept-1', 'kept-2'])
    ws.send(JSON.stringify({ type: 'message', iv, ciphertext: Buffer.from(t).toString('base64url') }));
  // The second client sees both live, so both were acknowledged by PostgreSQL (fan-out follows COMMIT).
  const { h: before, ws: w2 } = await history(base, 'pgroom', 'bbbb2222');
  assert.equal(before.messages.length, 2);
  ws.close(); w2.close();
  await server.stop();

  server = await startParleyd({ profile, port });
  const { h: after, ws: w3 } = await history(base, 'pgroom', 'cccc3333');
  assert.deepEqual(after.messages.map((m) => Buffer.from(m.ciphertext, 'base64url').toString()), ['kept-1', 'kept-2']);
  w3.close();
  await server.stop();
});
