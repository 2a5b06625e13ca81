// Relay profile details against a real parleyd: the allowlist path in the profile is relative
// to the profile file's directory (parleyd started from elsewhere), and a full store answers
// 507 with a JSON error and stores nothing.
//
// Env: PARLEYD, PARLEY_CLI.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, startParleyd, writeProfile, BROWSER_TESTS_DIR } from './lib/harness.mjs';

const CLI = process.env.PARLEY_CLI;
const PROFILE = path.join(BROWSER_TESTS_DIR, 'profiles', 'relay-store.yaml.in');

let tmp;
let d;
let hashes;

before(async () => {
  assert.ok(CLI && process.env.PARLEYD, 'PARLEYD and PARLEY_CLI must be set');
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'parley-relay-store-'));
  const profDir = path.join(tmp, 'profile');
  const cwd = path.join(tmp, 'elsewhere');
  fs.mkdirSync(cwd);
  // The profile says `allowlist: ids/allowlist.json`: the ids live next to the profile only.
  execFileSync(CLI, ['identities', 'generate', '--count', '2', '--out', path.join(profDir, 'ids'), '--circle', 'st'], { stdio: 'pipe' });
  hashes = JSON.parse(fs.readFileSync(path.join(profDir, 'ids', 'allowlist.json'), 'utf8')).keyHashes;
  const port = await freePort();
  const profile = await writeProfile(PROFILE, { port, stateDir: path.join(tmp, 'state'), dir: profDir });
  // Started from another directory, with the profile named by a relative path.
  d = await startParleyd({ profile: path.relative(cwd, profile), port, cwd });
});

after(async () => {
  const exit = await d?.stop();
  if (d) assert.equal(exit.code, 0, 'parleyd did not exit cleanly');
  if (tmp) await fsp.rm(tmp, { recursive: true, force: true });
});

test('allowlist path relative to the profile file: the members are allowed', async () => {
  for (const h of hashes) {
    const res = await fetch(`${d.url}/api/keys/allowed?keyHash=${h}`);
    assert.deepEqual(await res.json(), { allowed: true });
  }
  const res = await fetch(`${d.url}/api/keys/allowed?keyHash=${'0'.repeat(64)}`);
  assert.deepEqual(await res.json(), { allowed: false });
});

test('store full: 507 with a JSON error, nothing stored', async () => {
  const post = () => fetch(`${d.url}/api/blobs?recipientKeyHash=${hashes[0]}`, {
    method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: crypto.randomBytes(65536),
  });
  // max_bytes 200K holds three 64 KiB blobs.
  for (let i = 0; i < 3; i++) assert.equal((await post()).status, 201);
  const full = await post();
  assert.equal(full.status, 507);
  assert.match(full.headers.get('content-type'), /^application\/json/);
  assert.deepEqual(await full.json(), { error: 'storage full' });
  const list = await (await fetch(`${d.url}/api/blobs?recipientKeyHash=${hashes[0]}`)).json();
  assert.equal(list.length, 3);
  // Space freed by a delete is usable again.
  assert.equal((await fetch(`${d.url}/api/blobs/${list[0].id}`, { method: 'DELETE' })).status, 204);
  assert.equal((await post()).status, 201);
});
