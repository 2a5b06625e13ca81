// parley bench client: the BenchTalks wire crypto, written for parley.
//
// Format (what a BenchTalks 1.x browser sends and expects, so both clients read each other):
//   key        32 random bytes; in links as unpadded base64url in the fragment (#key=…)
//   payload    standard base64 (padded) of  nonce(24) || secretbox(plaintext, nonce, key)
//              secretbox = XSalsa20-Poly1305 (NaCl crypto_secretbox, via tweetnacl)
//   message    plaintext = UTF-8 of JSON {"sender": name, "text": text, "timestamp": ms}
//   image      plaintext = the image file's bytes, nothing else (no type, no name)
//   room id    16 random bytes as 32 lowercase hex digits (?room=…)
//   admin      token = standard base64 of 32 random bytes (#admin=… as unpadded base64url);
//              the join carries adminHash = hex SHA-256 of the token's 32 bytes, and admin
//              actions carry the token itself (standard base64) as their payload.
//
// Needs tweetnacl's `nacl` global (vendor/nacl-fast.min.js, a classic script loaded first).
// Works the same in Node (the vectors test) once globalThis.nacl is set.

export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const MAC_BYTES = 16;
export const SEAL_OVERHEAD = NONCE_BYTES + MAC_BYTES;
export const ROOM_ID_RE = /^[A-Za-z0-9._~-]{1,64}$/;   // what the bench dialect accepts
export const BENCH_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;   // claimer ids in pairing URLs

function nacl() {
  const n = globalThis.nacl;
  if (!n || typeof n.secretbox !== 'function') throw new Error('tweetnacl (nacl-fast.min.js) is not loaded');
  return n;
}

export const randomBytes = (n) => nacl().randomBytes(n);

// ------------------------------------------------------------------ encodings

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
// Character code -> 6-bit value, per alphabet (-1: not in it); codes above 0xff never are.
const INDEX = [B64, B64.slice(0, 62) + '-_'].map((a) => {
  const t = new Int16Array(256).fill(-1);
  for (let i = 0; i < 64; i++) t[a.charCodeAt(i)] = i;
  return t;
});

const ASCII = new TextDecoder();
const CODES = [B64, B64.slice(0, 62) + '-_'].map((a) => Uint8Array.from(a, (c) => c.charCodeAt(0)));

// Into a byte buffer first, one string at the end: fast enough for 10 MiB images.
function encode(bytes, url) {
  const abc = CODES[url ? 1 : 0];
  const n = bytes.length;
  const full = n - (n % 3);
  const rest = n - full;
  const out = new Uint8Array((full / 3) * 4 + (rest ? (url ? rest + 1 : 4) : 0));
  let o = 0;
  for (let i = 0; i < full; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = abc[(v >> 6) & 63];
    out[o++] = abc[v & 63];
  }
  if (rest) {
    const v = (bytes[full] << 16) | (rest === 2 ? bytes[full + 1] << 8 : 0);
    out[o++] = abc[v >> 18];
    out[o++] = abc[(v >> 12) & 63];
    if (rest === 2) out[o++] = abc[(v >> 6) & 63];
    if (!url) while (o < out.length) out[o++] = 61; // '='
  }
  return ASCII.decode(out);
}

function decode(str, url) {
  if (typeof str !== 'string') throw new TypeError('base64: not a string');
  let s = str;
  if (url) {
    s = s.replace(/=+$/, '');
  } else if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
    // Like tweetnacl-util's decodeBase64: whole quads, padding only at the end.
    throw new RangeError('base64: invalid encoding');
  } else {
    s = s.replace(/=+$/, '');
  }
  const n = s.length;
  const tail = n % 4;
  if (tail === 1) throw new RangeError('base64: bad length');
  const t = INDEX[url ? 1 : 0];
  const at = (i) => {
    const c = s.charCodeAt(i);
    return c > 0xff ? -1 : t[c];
  };
  const out = new Uint8Array(((n - tail) / 4) * 3 + (tail ? tail - 1 : 0));
  let o = 0;
  const full = n - tail;
  for (let i = 0; i < full; i += 4) {
    const a = at(i), b = at(i + 1), c = at(i + 2), d = at(i + 3);
    if ((a | b | c | d) < 0) throw new RangeError('base64: invalid character');
    const v = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = v >> 16;
    out[o++] = (v >> 8) & 0xff;
    out[o++] = v & 0xff;
  }
  if (tail) {
    const a = at(full), b = at(full + 1), c = tail === 3 ? at(full + 2) : 0;
    if ((a | b | c) < 0) throw new RangeError('base64: invalid character');
    const v = (a << 18) | (b << 12) | (c << 6);
    out[o++] = v >> 16;
    if (tail === 3) out[o++] = (v >> 8) & 0xff;
  }
  return out;
}

export const bytesToB64 = (bytes) => encode(bytes, false);   // standard, padded
export const b64ToBytes = (str) => decode(str, false);       // strict standard base64
export const b64urlEncode = (bytes) => encode(bytes, true);  // unpadded base64url
export const b64urlDecode = (str) => decode(str, true);
// A standard base64 string as it appears in BenchTalks links, and back.
export const b64ToB64url = (s) => s.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
export const b64urlToB64 = (s) => {
  const t = s.replace(/-/g, '+').replace(/_/g, '/');
  return t + '='.repeat((4 - (t.length % 4)) % 4);
};

export const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

// --------------------------------------------------------------- secretbox

// nonce || secretbox(plain) as standard base64: the `payload` of message and image frames.
export function sealBytes(plain, key, nonce = randomBytes(NONCE_BYTES)) {
  checkKey(key);
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) throw new RangeError('nonce must be 24 bytes');
  const box = nacl().secretbox(plain, nonce, key);
  const out = new Uint8Array(NONCE_BYTES + box.length);
  out.set(nonce);
  out.set(box, NONCE_BYTES);
  return bytesToB64(out);
}

// The plaintext bytes, or null when the payload is malformed, forged or for another key.
export function openBytes(payload, key) {
  checkKey(key);
  let all;
  try {
    all = b64ToBytes(payload);
  } catch {
    return null;
  }
  if (all.length < SEAL_OVERHEAD) return null;
  return nacl().secretbox.open(all.subarray(NONCE_BYTES), all.subarray(0, NONCE_BYTES), key) || null;
}

export const sealJSON = (value, key, nonce) => sealBytes(utf8Encoder.encode(JSON.stringify(value)), key, nonce);

export function openJSON(payload, key) {
  const plain = openBytes(payload, key);
  if (!plain) return null;
  try {
    return JSON.parse(utf8Decoder.decode(plain));
  } catch {
    return null;
  }
}

// A chat message as BenchTalks writes it (field order included).
export const sealChat = ({ sender, text, timestamp }, key, nonce) => sealJSON({ sender, text, timestamp }, key, nonce);

// The message with its fields checked (they come from whoever holds the key), or null.
export function openChat(payload, key) {
  const m = openJSON(payload, key);
  if (!m || typeof m !== 'object' || Array.isArray(m) || typeof m.text !== 'string') return null;
  return {
    sender: typeof m.sender === 'string' && m.sender.trim() ? m.sender.slice(0, 80) : 'Anonymous',
    text: m.text,
    timestamp: Number.isFinite(m.timestamp) ? m.timestamp : null,
  };
}

function checkKey(key) {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) throw new RangeError('key must be 32 bytes');
}

// ---------------------------------------------------------- ids and tokens

export const newKey = () => randomBytes(KEY_BYTES);
export const newRoomId = () => toHex(randomBytes(16));
export const newAdminToken = () => bytesToB64(randomBytes(32));

// SHA-256 (hex) of the admin token's bytes: the join's adminHash. WebCrypto when there is one
// (secure contexts), otherwise the small implementation below (plain-http deployments).
export async function adminHash(token) {
  const bytes = b64ToBytes(token);
  const subtle = globalThis.crypto?.subtle;
  if (subtle) return toHex(new Uint8Array(await subtle.digest('SHA-256', bytes)));
  return toHex(sha256(bytes));
}

const K256 = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

// FIPS 180-4 SHA-256 (short inputs: tokens).
export function sha256(data) {
  const len = data.length;
  const padded = new Uint8Array(((len + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[len] = 0x80;
  const dv = new DataView(padded.buffer);
  dv.setUint32(padded.length - 8, Math.floor(len / 0x20000000));
  dv.setUint32(padded.length - 4, (len << 3) >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = dv.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const odv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) odv.setUint32(i * 4, h[i]);
  return out;
}

// ------------------------------------------------------------------ links

// BenchTalks' room link: /room.html?room=<id>#key=<base64url>[&admin=<base64url>].
export function roomUrl(origin, roomId, key, adminToken) {
  let url = `${origin}/room.html?room=${encodeURIComponent(roomId)}#key=${b64urlEncode(key)}`;
  if (adminToken) url += `&admin=${b64ToB64url(adminToken)}`;
  return url;
}

// BenchTalks' pairing link: the room link plus ?pair=<token>&claimer=<bench id>, keeping the
// fragment (key and admin token: the claiming operator joins as admin). Unlike BenchTalks the
// token is percent-encoded, so a "+" in it survives URLSearchParams on the other side.
export const pairingUrl = (origin, roomId, pairToken, claimer, hash) =>
  `${origin}/room.html?room=${encodeURIComponent(roomId)}&pair=${encodeURIComponent(pairToken)}` +
  `&claimer=${encodeURIComponent(claimer)}${hash}`;

// parley's one-time invite link: only the server's token and a key for the sealed payload,
// both in the fragment. The server holds the payload (sealed with `ik`, never sent to it) and
// sees the token only when the invitee redeems it; the room key is never readable by it.
export const inviteUrl = (origin, token, inviteKey) =>
  `${origin}/room.html#invite=${encodeURIComponent(token)}&ik=${b64urlEncode(inviteKey)}`;

// Reads a location ({search, hash}); every field is null when absent or unusable.
export function parseRoomLocation({ search, hash }) {
  const q = new URLSearchParams(search);
  const f = new URLSearchParams(hash.startsWith('#') ? hash.slice(1) : hash);
  const out = {
    roomId: null, key: null, adminToken: null, pairToken: null, claimer: null, invite: null, problem: null,
  };
  const room = q.get('room');
  if (room !== null) {
    if (ROOM_ID_RE.test(room)) out.roomId = room;
    else out.problem = 'The room id in this link is not valid.';
  }
  const key = f.get('key');
  if (key !== null) {
    try {
      const bytes = b64urlDecode(b64ToB64url(key)); // accepts either alphabet, like BenchTalks
      if (bytes.length === KEY_BYTES) out.key = bytes;
    } catch { /* reported below */ }
    if (!out.key) out.problem ??= 'The key in this link is damaged.';
  }
  const admin = f.get('admin');
  if (admin) {
    try {
      const token = b64urlToB64(b64ToB64url(admin));
      if (b64ToBytes(token).length === 32) out.adminToken = token;
    } catch { /* an unusable admin token: join as a member */ }
  }
  const pair = q.get('pair');
  const claimer = q.get('claimer');
  if (pair && claimer !== null) {
    out.pairToken = pair;
    out.claimer = claimer;
  }
  const token = f.get('invite');
  const ik = f.get('ik');
  if (token !== null || ik !== null) {
    let inviteKey = null;
    try {
      inviteKey = b64urlDecode(ik ?? '');
    } catch { /* reported below */ }
    if (token && /^[A-Za-z0-9_-]{16,88}$/.test(token) && inviteKey?.length === KEY_BYTES) {
      out.invite = { token, key: inviteKey };
    } else {
      out.problem ??= 'This invite link is damaged.';
    }
  }
  return out;
}

// ---------------------------------------------------------------- invites

// The invite payload: {"key": room key as base64url, "room": room id}, sealed like a message
// ("key" is the field BenchTalks' join page reads) with a key only the invite link carries.
export const sealInvite = (roomId, roomKey, inviteKey, nonce) =>
  sealJSON({ key: b64urlEncode(roomKey), room: roomId }, inviteKey, nonce);

// {roomId, key} or null. `serverRoomId` is what /join/<token> answered; the sealed room id
// wins, and a server that swapped it is caught.
export function openInvite(payload, inviteKey, serverRoomId) {
  const v = openJSON(payload, inviteKey);
  if (!v || typeof v.key !== 'string') return null;
  let key;
  try {
    key = b64urlDecode(b64ToB64url(v.key));
  } catch {
    return null;
  }
  if (key.length !== KEY_BYTES) return null;
  const roomId = typeof v.room === 'string' ? v.room : serverRoomId;
  if (typeof roomId !== 'string' || !ROOM_ID_RE.test(roomId)) return null;
  if (typeof v.room === 'string' && serverRoomId && serverRoomId !== v.room) return null;
  return { roomId, key };
}

// ------------------------------------------------------------------ images

// What a decrypted image really is, from its first bytes (the sender's claim is not trusted,
// and BenchTalks sends none). Only raster formats are shown.
export function sniffImageType(b) {
  const at = (i, ...xs) => xs.every((x, k) => b[i + k] === x);
  if (b.length >= 8 && at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return 'image/png';
  if (b.length >= 3 && at(0, 0xff, 0xd8, 0xff)) return 'image/jpeg';
  if (b.length >= 6 && (at(0, 0x47, 0x49, 0x46, 0x38, 0x37, 0x61) || at(0, 0x47, 0x49, 0x46, 0x38, 0x39, 0x61))) return 'image/gif';
  if (b.length >= 12 && at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) return 'image/webp';
  if (b.length >= 12 && at(4, 0x66, 0x74, 0x79, 0x70) && (at(8, 0x61, 0x76, 0x69, 0x66) || at(8, 0x61, 0x76, 0x69, 0x73))) return 'image/avif';
  if (b.length >= 2 && at(0, 0x42, 0x4d)) return 'image/bmp';
  return null;
}
