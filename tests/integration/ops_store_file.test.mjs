// The out-of-tree examples/store-file plugin (built against the installed SDK by
// ops_store_file_test.sh) as the history store of a link-room profile run by the installed
// parleyd: messages are stored through it, replayed to a late joiner, kept in files under the
// state dir, and replayed again after a parleyd restart (only the files can provide them then).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { freePort, sleep, spawnParleyd, tempDir, waitHealthy, wsClient } from './ops_lib.mjs';

const so = process.env.STORE_FILE_SO;
if (!so || !fs.existsSync(so)) throw new Error('STORE_FILE_SO must name the built parley-store-file.so');
const work = tempDir('store-file');
after(() => fs.rmSync(work, { recursive: true, force: true }));

const iv = Buffer.alloc(12, 3).toString('base64url');
const text = (m) => Buffer.from(m.ciphertext, 'base64url').toString();

// Output arrives asynchronously: poll for a line (bounded).
async function waitLog(d, re) {
  for (let i = 0; i < 100 && !re.test(d.logs()); i++) await sleep(50);
  assert.match(d.logs(), re);
}

async function join(port, room, id) {
  const c = wsClient(`ws://127.0.0.1:${port}/ws/${room}?client=${id}`);
  await c.opened;
  const h = JSON.parse(await c.wait((t) => JSON.parse(t).type === 'history'));
  return { c, h };
}

test('link-room history through the out-of-tree store-file plugin survives a restart', async () => {
  const port = await freePort();
  const state = path.join(work, 'state');
  const file = path.join(work, 'files.yaml');
  fs.writeFileSync(file, `profile: files
state_dir: ${state}
store: files
plugins:
  - name: files
    file: ${so}
    plugin: store-file
    config: {history_limit: 3, history_ttl: 1h}
  - name: web
    plugin: transport-ws
    config: {host: 127.0.0.1, port: ${port}, protocol: link, threads: 1}
`);
  let d = spawnParleyd(file);
  await waitHealthy(d, port);
  await waitLog(d, /store-file: 0 rooms, 0 blobs loaded/);
  const { c: a } = await join(port, 'fileroom', 'aaaa1111');
  for (const t of ['one', 'two', 'three', 'four'])
    a.send({ type: 'message', iv, ciphertext: Buffer.from(t).toString('base64url') });
  const { c: b, h: before } = await join(port, 'fileroom', 'bbbb2222');
  // history_limit 3: the oldest of four is gone.
  assert.deepEqual(before.messages.map(text), ['two', 'three', 'four']);
  a.close(); b.close();
  assert.equal((await d.stop()).code, 0, d.logs());
  const logs = fs.readdirSync(path.join(state, 'files', 'history'));
  assert.equal(logs.length, 1, `one room file expected: ${logs}`);
  assert.equal(logs[0], `${Buffer.from('fileroom').toString('hex')}.log`);
  d = spawnParleyd(file);
  await waitHealthy(d, port);
  await waitLog(d, /store-file: 1 rooms, 0 blobs loaded/);
  const { c, h: afterRestart } = await join(port, 'fileroom', 'cccc3333');
  assert.deepEqual(afterRestart.messages.map(text), ['two', 'three', 'four']);
  assert.equal(afterRestart.messages[0].from, 'aaaa1111');
  c.close();
  assert.equal((await d.stop()).code, 0, d.logs());
});
