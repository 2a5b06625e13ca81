// Checks the bench web client's crypto.js (the exact file the browser loads, with the exact
// vendored tweetnacl it loads) against BenchTalks' format:
//   - vectors/bench-secretbox.json (made with npm tweetnacl 1.0.3 in Node) decrypt in ours and
//     our encryption with the same nonce gives the same bytes;
//   - a small reference implementation of BenchTalks' browser crypto.js algorithm, written
//     here from its description (tweetnacl + tweetnacl-util semantics), decrypts what ours
//     encrypts and vice versa;
//   - link layout, admin token hashing, invites and the helpers around them.

import test from 'node:test';
import assert from 'node:assert/strict';
import nodeCrypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WEB = path.resolve(HERE, '../../plugins/transport-ws/web/bench');
const require = createRequire(import.meta.url);
const refNacl = require('tweetnacl'); // the npm package, independent of the vendored copy

// The browser loads vendor/nacl-fast.min.js as a classic script that sets self.nacl; do the same.
globalThis.self ??= globalThis;
const vendored = fs.readFileSync(path.join(WEB, 'vendor/nacl-fast.min.js'), 'utf8');
vm.runInThisContext(vendored, { filename: 'vendor/nacl-fast.min.js' });
assert.ok(globalThis.nacl?.secretbox, 'the vendored tweetnacl defines self.nacl');

const bench = await import(path.join(WEB, 'crypto.js'));
const {
  adminHash, b64ToBytes, b64urlDecode, b64urlEncode, bytesToB64, inviteUrl, newAdminToken, newKey, newRoomId,
  openBytes, openChat, openInvite, openJSON, pairingUrl, parseRoomLocation, roomUrl, sealBytes, sealChat,
  sealInvite, sealJSON, sha256, sniffImageType,
} = bench;

const data = JSON.parse(fs.readFileSync(path.join(HERE, 'vectors/bench-secretbox.json'), 'utf8'));

// ---------------------------------------------------------------------------------------------
// Reference: BenchTalks' crypto.js algorithm (browser build of tweetnacl-util: base64 through
// btoa/atob of a binary string, UTF-8 through encodeURIComponent/escape).

const ref = {
  decodeUTF8: (s) => Uint8Array.from(unescape(encodeURIComponent(s)), (c) => c.charCodeAt(0)),
  encodeUTF8: (arr) => decodeURIComponent(escape(String.fromCharCode(...arr))),
  encodeBase64(arr) {
    const s = [];
    for (let i = 0; i < arr.length; i++) s.push(String.fromCharCode(arr[i]));
    return btoa(s.join(''));
  },
  decodeBase64(s) {
    if (s.length % 4 !== 0 || /[^+/0-9A-Za-z=]/.test(s)) throw new TypeError('invalid encoding');
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  },
  // encryptMessage / encryptImage: nonce(24) || secretbox, base64. (Nonce injectable here.)
  seal(bytes, key, nonce = refNacl.randomBytes(24)) {
    const enc = refNacl.secretbox(bytes, nonce, key);
    const all = new Uint8Array(nonce.length + enc.length);
    all.set(nonce);
    all.set(enc, nonce.length);
    return ref.encodeBase64(all);
  },
  open(b64, key) {
    const all = ref.decodeBase64(b64);
    return refNacl.secretbox.open(all.slice(24), all.slice(0, 24), key);
  },
  encryptMessage: (obj, key, nonce) => ref.seal(ref.decodeUTF8(JSON.stringify(obj)), key, nonce),
  decryptMessage(b64, key) {
    const d = ref.open(b64, key);
    return d ? JSON.parse(ref.encodeUTF8(d)) : null;
  },
  keyToString: (key) => ref.encodeBase64(key),
  stringToKey: (s) => ref.decodeBase64(s),
  hashAdminToken: (token) => nodeCrypto.createHash('sha256').update(ref.decodeBase64(token)).digest('hex'),
  toUrl: (b64) => b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=/g, ''),
  fromUrl(u) {
    let b = u.replace(/-/g, '+').replace(/_/g, '/');
    while (b.length % 4 !== 0) b += '=';
    return b;
  },
  buildAdminURL: (origin, roomId, key, token) =>
    `${origin}/room.html?room=${roomId}#key=${ref.toUrl(ref.keyToString(key))}&admin=${ref.toUrl(token)}`,
  buildRoomURL: (origin, roomId, key) => `${origin}/room.html?room=${roomId}#key=${ref.toUrl(ref.keyToString(key))}`,
};

const bytesOf = (b64) => new Uint8Array(Buffer.from(b64, 'base64'));
const same = (a, b, msg) => assert.deepEqual(Buffer.from(a), Buffer.from(b), msg);

// ---------------------------------------------------------------------------------------------

test('the vendored tweetnacl is npm tweetnacl 1.0.3, unmodified under its header', () => {
  const upstream = fs.readFileSync(path.join(HERE, 'node_modules/tweetnacl/nacl-fast.min.js'), 'utf8');
  assert.equal(require('tweetnacl/package.json').version, '1.0.3');
  const end = vendored.indexOf('*/\n');
  assert.ok(vendored.startsWith('/*! tweetnacl-js 1.0.3') && end > 0, 'license header first');
  assert.match(vendored.slice(0, end), /Unlicense/);
  const body = vendored.slice(end + 3);
  assert.equal(body, upstream);
  const sha = nodeCrypto.createHash('sha256').update(upstream).digest('hex');
  assert.ok(vendored.slice(0, end).includes(sha), 'the header names the upstream SHA-256');
});

test('vector file is well-formed', () => {
  assert.equal(data.vectors.length, 3);
  for (const v of data.vectors) {
    assert.equal(bytesOf(v.keyB64).length, 32, v.name);
    assert.equal(v.keyFragment, ref.toUrl(v.keyB64), `${v.name}: #key= form`);
    assert.equal(bytesOf(v.nonceB64).length, 24, v.name);
    assert.ok(v.payload.startsWith(v.nonceB64.slice(0, 32)), `${v.name}: payload starts with the nonce`);
    assert.ok(['message', 'image'].includes(v.kind));
  }
  assert.ok(data.vectors.some((v) => /[+/]/.test(v.keyB64)), 'a key that differs between base64 and base64url');
});

for (const v of data.vectors) {
  const key = bytesOf(v.keyB64);
  const nonce = bytesOf(v.nonceB64);
  const plain = v.kind === 'message' ? Buffer.from(v.plaintext, 'utf8') : bytesOf(v.plaintextB64);

  test(`vector ${v.name}: BenchTalks' algorithm (npm tweetnacl) makes exactly this payload`, () => {
    const payload = v.kind === 'message' ? ref.encryptMessage(JSON.parse(v.plaintext), key, nonce) : ref.seal(plain, key, nonce);
    assert.equal(payload, v.payload);
  });

  test(`vector ${v.name}: our crypto.js decrypts it and re-encrypts it byte for byte`, () => {
    // The key as a BenchTalks link carries it.
    const loc = parseRoomLocation({ search: '?room=0123456789abcdef0123456789abcdef', hash: `#key=${v.keyFragment}` });
    same(loc.key, key, 'key from the #fragment');
    if (v.kind === 'message') {
      const m = JSON.parse(v.plaintext);
      assert.deepEqual(openJSON(v.payload, loc.key), m);
      assert.deepEqual(openChat(v.payload, loc.key), m);
      assert.equal(sealChat(m, loc.key, nonce), v.payload);
    } else {
      same(openBytes(v.payload, loc.key), plain);
      assert.equal(sealBytes(plain, loc.key, nonce), v.payload);
      assert.equal(sniffImageType(openBytes(v.payload, loc.key)), v.mimeType);
    }
  });

  test(`vector ${v.name}: tampered, truncated or other-key payloads are refused`, () => {
    const raw = bytesOf(v.payload);
    for (const i of [0, 23, 24, 39, raw.length - 1]) {
      const t = Uint8Array.from(raw);
      t[i] ^= 0x01;
      assert.equal(openBytes(Buffer.from(t).toString('base64'), key), null, `bit flip at ${i}`);
    }
    assert.equal(openBytes(Buffer.from(raw.subarray(0, 39)).toString('base64'), key), null, 'shorter than nonce+MAC');
    const other = Uint8Array.from(key);
    other[31] ^= 0x80;
    assert.equal(openBytes(v.payload, other), null);
    assert.equal(openBytes(`${v.payload.slice(0, -4)}!!!!`, key), null, 'not base64');
    assert.equal(openChat(v.payload, other), null);
  });
}

test('round trips: ours -> BenchTalks and BenchTalks -> ours (messages and images)', () => {
  const texts = ['', 'hi', 'naïve café — 漢字 — עברית — 🪑🇬🇷', 'x'.repeat(20_000), '"quotes" \\ back\nslash\t<script>alert(1)</script>'];
  for (let i = 0; i < 20; i++) {
    const key = newKey();
    const msg = { sender: `Name ${i} ✓`, text: texts[i % texts.length], timestamp: 1_700_000_000_000 + i };
    // ours -> reference (a BenchTalks client)
    assert.deepEqual(ref.decryptMessage(sealChat(msg, key), key), msg);
    // reference -> ours
    assert.deepEqual(openChat(ref.encryptMessage(msg, key), key), msg);
    // images: arbitrary bytes, including sizes around the base64 quantum
    const img = nodeCrypto.randomBytes([0, 1, 2, 3, 1000, 65_537, 300_001][i % 7]);
    same(ref.open(sealBytes(img, key), key), img);
    same(openBytes(ref.seal(img, key), key), img);
  }
});

test('a 10 MiB image (BenchTalks\' default limit) survives both ways', () => {
  const key = newKey();
  const img = nodeCrypto.randomBytes(10 * 1024 * 1024);
  const ours = sealBytes(img, key);
  assert.equal(ours.length, Math.ceil((img.length + 40) / 3) * 4, 'size as the server computes its cap');
  assert.equal(ours, Buffer.from(b64ToBytes(ours)).toString('base64'));
  same(ref.open(ours, key), img);
  same(openBytes(ref.seal(img, key), key), img);
});

test('openChat keeps only well-formed messages and bounds the name', () => {
  const key = newKey();
  assert.equal(openChat(sealJSON(['not', 'an', 'object'], key), key), null);
  assert.equal(openChat(sealJSON({ sender: 'a', text: 5 }, key), key), null);
  assert.equal(openChat(sealBytes(new Uint8Array([0xff, 0xfe]), key), key), null, 'invalid UTF-8');
  assert.equal(openChat(sealBytes(Buffer.from('{"text":'), key), key), null, 'invalid JSON');
  const m = openChat(sealJSON({ sender: 'z'.repeat(500), text: 't', timestamp: 'soon' }, key), key);
  assert.equal(m.sender.length, 80);
  assert.equal(m.timestamp, null);
  assert.equal(openChat(sealJSON({ text: 't' }, key), key).sender, 'Anonymous');
});

test('admin tokens: #admin= form, join adminHash, and the SHA-256 fallback', async () => {
  for (const a of data.adminTokens) {
    const loc = parseRoomLocation({ search: '?room=abc', hash: `#key=${data.vectors[0].keyFragment}&admin=${a.tokenFragment}` });
    assert.equal(loc.adminToken, a.tokenB64, 'the token as BenchTalks sends it (padded standard base64)');
    assert.equal(loc.adminToken, ref.fromUrl(a.tokenFragment));
    assert.equal(await adminHash(loc.adminToken), a.adminHash);
    assert.equal(ref.hashAdminToken(loc.adminToken), a.adminHash);
    assert.equal(Buffer.from(sha256(b64ToBytes(a.tokenB64))).toString('hex'), a.adminHash);
  }
  for (let n = 0; n < 200; n += 7) {
    const b = nodeCrypto.randomBytes(n);
    assert.equal(Buffer.from(sha256(b)).toString('hex'), nodeCrypto.createHash('sha256').update(b).digest('hex'), `sha256 of ${n} bytes`);
  }
  const t = newAdminToken();
  assert.equal(b64ToBytes(t).length, 32);
  assert.equal(await adminHash(t), ref.hashAdminToken(t));
});

test('links: same layout as BenchTalks, and parsed back', () => {
  const origin = 'https://bench.example';
  for (let i = 0; i < 20; i++) {
    const roomId = newRoomId();
    assert.match(roomId, /^[0-9a-f]{32}$/);
    const key = newKey();
    const token = newAdminToken();
    assert.equal(roomUrl(origin, roomId, key, token), ref.buildAdminURL(origin, roomId, key, token));
    assert.equal(roomUrl(origin, roomId, key), ref.buildRoomURL(origin, roomId, key));
    const u = new URL(roomUrl(origin, roomId, key, token));
    const loc = parseRoomLocation(u);
    assert.equal(loc.roomId, roomId);
    same(loc.key, key);
    assert.equal(loc.adminToken, token);
    assert.equal(loc.problem, null);
  }
  assert.match(parseRoomLocation({ search: '?room=a%20b', hash: '#key=x' }).problem, /room id/);
  assert.match(parseRoomLocation({ search: '?room=abc', hash: '#key=tooshort' }).problem, /key/);
  assert.equal(parseRoomLocation({ search: '', hash: '' }).roomId, null);
  // A garbled admin token is ignored (join as a member), not fatal.
  assert.equal(parseRoomLocation({ search: '?room=abc', hash: `#key=${data.vectors[0].keyFragment}&admin=%%%` }).adminToken, null);
});

test('pairing links keep the token intact (BenchTalks forgets to escape "+")', () => {
  const raw = Buffer.from('fb/+ff/+'.repeat(4), 'base64'); // a token with "+" and "/" in it
  const token = raw.toString('base64');
  assert.match(token, /[+/]/);
  const hash = `#key=${data.vectors[0].keyFragment}&admin=${data.adminTokens[0].tokenFragment}`;
  const u = new URL(pairingUrl('https://b.example', 'r00m', token, 'bench-b', hash));
  assert.equal(u.pathname, '/room.html');
  assert.equal(u.hash, hash);
  const loc = parseRoomLocation(u);
  assert.equal(loc.pairToken, token);
  assert.equal(loc.claimer, 'bench-b');
  assert.equal(loc.roomId, 'r00m');
  assert.equal(loc.adminToken, data.adminTokens[0].tokenB64);
});

test('one-time invites: the server holds a payload it cannot open; a BenchTalks join page reads the same shape', () => {
  const roomId = newRoomId();
  const roomKey = newKey();
  const ik = newKey();
  const payload = sealInvite(roomId, roomKey, ik);
  // What the server stores and returns: no trace of the room key in it.
  assert.ok(!payload.includes(b64urlEncode(roomKey)) && !payload.includes(bytesToB64(roomKey)));
  assert.deepEqual(openInvite(payload, ik, roomId), { roomId, key: roomKey });
  assert.deepEqual(openInvite(payload, ik, null), { roomId, key: roomKey }, 'the sealed room id is enough');
  assert.equal(openInvite(payload, ik, 'another-room'), null, 'a server that swaps the room is caught');
  assert.equal(openInvite(payload, newKey(), roomId), null, 'the server\'s token alone does not open it');
  // BenchTalks 1.2.0's join page: decryptMessage(payload, key).key is the base64url room key.
  const asBenchTalks = ref.decryptMessage(payload, ik);
  same(ref.stringToKey(ref.fromUrl(asBenchTalks.key)), roomKey);
  // The link: token and invite key only in the fragment.
  const u = new URL(inviteUrl('https://b.example', 'Abc_-123'.repeat(5) + 'xyz', ik));
  assert.equal(u.search, '');
  const loc = parseRoomLocation(u);
  assert.equal(loc.invite.token, 'Abc_-123'.repeat(5) + 'xyz');
  same(loc.invite.key, ik);
  assert.match(parseRoomLocation({ search: '', hash: '#invite=abc&ik=short' }).problem, /invite/);
});

test('base64 helpers match Buffer and are strict where BenchTalks is', () => {
  for (let n = 0; n < 80; n++) {
    const b = nodeCrypto.randomBytes(n);
    assert.equal(bytesToB64(b), b.toString('base64'));
    assert.equal(b64urlEncode(b), b.toString('base64url'));
    same(b64ToBytes(b.toString('base64')), b);
    same(b64urlDecode(b.toString('base64url')), b);
  }
  for (const bad of ['abc', 'ab=c', 'a===', 'ab-_', 'ab cd', 'abcd!']) assert.throws(() => b64ToBytes(bad), undefined, bad);
  assert.throws(() => b64urlDecode('ab+/'));
  assert.throws(() => b64urlDecode('abcde'));
});

test('image type sniffing: what is shown is what the bytes are', () => {
  const png = bytesOf(data.vectors[2].plaintextB64);
  assert.equal(sniffImageType(png), 'image/png');
  assert.equal(sniffImageType(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 0])), 'image/jpeg');
  assert.equal(sniffImageType(Buffer.from('GIF89a....')), 'image/gif');
  assert.equal(sniffImageType(Buffer.from('RIFF\0\0\0\0WEBPVP8 ')), 'image/webp');
  assert.equal(sniffImageType(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"></svg>')), null);
  assert.equal(sniffImageType(Buffer.from('<html><script>')), null);
  assert.equal(sniffImageType(new Uint8Array(0)), null);
});
