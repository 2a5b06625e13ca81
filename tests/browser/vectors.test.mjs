// Checks the link-room client's crypto.js (the exact file the browser loads)
// against the shared vectors the C++ CLI client also checks, plus an
// independent decrypt through node:crypto so a bug shared by the generator and
// crypto.js cannot hide.

import test from 'node:test';
import assert from 'node:assert/strict';
import nodeCrypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  b64urlDecode, b64urlEncode, decrypt, encrypt, importKey, openMessage, sealMessage,
  randomClientId, randomRoomId, MAX_TEXT,
} from '../../plugins/transport-ws/web/link/crypto.js';
import { displayName, fnv1a32, hueIndex } from '../../plugins/transport-ws/web/link/names.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const aes = JSON.parse(fs.readFileSync(path.join(HERE, 'vectors/link-aesgcm.json'), 'utf8'));
const names = JSON.parse(fs.readFileSync(path.join(HERE, 'vectors/link-names.json'), 'utf8'));

test('vector file is well-formed', () => {
  assert.equal(aes.vectors.length, 3);
  for (const v of aes.vectors) {
    assert.equal(b64urlDecode(v.keyB64url).length, 32, v.name);
    assert.equal(b64urlDecode(v.ivB64url).length, 12, v.name);
    for (const f of ['keyB64url', 'ivB64url', 'ciphertextB64url']) assert.match(v[f], /^[A-Za-z0-9_-]+$/, `${v.name}.${f} unpadded base64url`);
  }
});

for (const v of aes.vectors) {
  test(`AES-GCM vector ${v.name}: decrypt and re-encrypt with crypto.js`, async () => {
    // Raw bytes, base64url string and a non-extractable CryptoKey must all work.
    const keyBytes = b64urlDecode(v.keyB64url);
    const cryptoKey = await importKey(keyBytes);
    assert.equal(cryptoKey.extractable, false);
    for (const key of [keyBytes, v.keyB64url, cryptoKey]) {
      assert.equal(await decrypt(key, v.ivB64url, v.ciphertextB64url), v.plaintext);
    }
    const again = await encrypt(cryptoKey, v.plaintext, b64urlDecode(v.ivB64url));
    assert.deepEqual(again, { iv: v.ivB64url, ciphertext: v.ciphertextB64url });
  });

  test(`AES-GCM vector ${v.name}: independent check with node:crypto`, () => {
    const ct = Buffer.from(v.ciphertextB64url, 'base64url');
    const d = nodeCrypto.createDecipheriv('aes-256-gcm', Buffer.from(v.keyB64url, 'base64url'), Buffer.from(v.ivB64url, 'base64url'));
    d.setAuthTag(ct.subarray(ct.length - 16));
    const pt = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]).toString('utf8');
    assert.equal(pt, v.plaintext);
  });

  test(`AES-GCM vector ${v.name}: tampering and wrong key are rejected`, async () => {
    const ct = b64urlDecode(v.ciphertextB64url);
    ct[ct.length - 1] ^= 1;
    await assert.rejects(decrypt(v.keyB64url, v.ivB64url, b64urlEncode(ct)));
    const otherKey = b64urlDecode(v.keyB64url);
    otherKey[0] ^= 0x80;
    await assert.rejects(decrypt(otherKey, v.ivB64url, v.ciphertextB64url));
  });
}

test('base64url is strict', () => {
  assert.deepEqual([...b64urlDecode('-_8')], [0xfb, 0xff]);
  assert.deepEqual([...b64urlDecode('-_8=')], [0xfb, 0xff]); // padding tolerated
  for (const bad of ['+/8', 'a', 'ab!c', 'a b', 'abcde']) assert.throws(() => b64urlDecode(bad), undefined, bad);
  const bytes = nodeCrypto.randomBytes(1000);
  assert.equal(b64urlEncode(bytes), bytes.toString('base64url'));
});

test('sealMessage/openMessage round trip and plaintext validation', async () => {
  const key = await importKey(nodeCrypto.randomBytes(32));
  const { iv, ciphertext, msg } = await sealMessage(key, { text: 'hi\nthere', name: 'Brave Otter' });
  assert.equal(b64urlDecode(iv).length, 12);
  assert.deepEqual(await openMessage(key, { iv, ciphertext }), msg);
  assert.match(msg.id, /^[A-Za-z0-9_-]{16}$/);

  await assert.rejects(sealMessage(key, { text: '', name: 'x' }));
  await assert.rejects(sealMessage(key, { text: 'x'.repeat(MAX_TEXT + 1), name: 'x' }));
  for (const bad of ['[1]', '"str"', '{"text":1,"id":"abcdefgh","ts":1}', '{"text":"a","id":"bad id!","ts":1}', '{"text":"a","id":"abcdefgh"}']) {
    const e = await encrypt(key, bad);
    await assert.rejects(openMessage(key, e), undefined, bad);
  }
});

test('ids have the advertised shapes', () => {
  for (let i = 0; i < 200; i++) assert.match(randomClientId(), /^[a-z0-9]{8}$/);
  const roomId = randomRoomId();
  assert.match(roomId, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(b64urlDecode(roomId).length, 16);
});

test('display names match the shared vectors', () => {
  assert.equal(fnv1a32('a'), 0xe40c292c); // published FNV-1a known answer
  for (const v of names.vectors) {
    assert.equal(fnv1a32(v.clientId), v.fnv1a32, v.clientId);
    assert.equal(displayName(v.clientId), v.name, v.clientId);
    assert.equal(hueIndex(v.clientId), v.hue, v.clientId);
  }
});
