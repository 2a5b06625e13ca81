// Link-room cryptography: AES-256-GCM with one shared room key.
//
// Used by the browser client (served as /crypto.js) and imported unchanged by
// Node tests (tests/browser/vectors.test.mjs): it depends only on WebCrypto
// (globalThis.crypto), TextEncoder/TextDecoder and atob/btoa, which both have.
//
// Wire format (must match the C++ CLI client and tests/browser/vectors/):
//   key        32 random bytes, base64url without padding in the invite hash
//   iv         12 random bytes per message, base64url without padding
//   ciphertext AES-GCM output as WebCrypto lays it out: encrypted bytes followed
//              by the 16-byte tag, no AAD, base64url without padding
//   plaintext  UTF-8 JSON {"text","name","id","ts"} (see sealMessage)

const subtle = globalThis.crypto.subtle;
const enc = new TextEncoder();
// fatal: a ciphertext that decrypts to invalid UTF-8 is rejected, not patched up.
const dec = new TextDecoder('utf-8', { fatal: true });

export const KEY_BYTES = 32;
export const IV_BYTES = 12;
export const MAX_TEXT = 4000;        // characters; the composer enforces the same
const MAX_NAME = 64;
const ID_RE = /^[A-Za-z0-9_-]{8,64}$/;
const B64URL_RE = /^[A-Za-z0-9_-]*$/;

// ---------------------------------------------------------------- base64url

export function b64urlEncode(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let bin = '';
  // Chunked so large buffers do not overflow the argument limit of apply().
  for (let i = 0; i < u8.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  }
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// Strict: only the URL-safe alphabet, optional trailing '=' padding tolerated,
// and a length that can be valid base64 (length % 4 !== 1).
export function b64urlDecode(str) {
  if (typeof str !== 'string') throw new TypeError('base64url: not a string');
  const s = str.replace(/=+$/, '');
  if (!B64URL_RE.test(s) || s.length % 4 === 1) throw new TypeError('base64url: invalid input');
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// ------------------------------------------------------------- randomness

export function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

export const generateKeyBytes = () => randomBytes(KEY_BYTES);
export const randomRoomId = () => b64urlEncode(randomBytes(16));   // 22 chars
export const randomMessageId = () => b64urlEncode(randomBytes(12)); // 16 chars

// [a-z0-9]{len}; rejection sampling keeps every character equally likely.
export function randomClientId(len = 8) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < len) {
    for (const b of randomBytes(len * 2)) {
      if (b < limit && out.length < len) out += alphabet[b % alphabet.length];
    }
  }
  return out;
}

// ------------------------------------------------------------------ keys

// Non-extractable on purpose: page script can use the key but WebCrypto will
// never hand its bytes back (exportKey throws).
export async function importKey(keyBytes, extractable = false) {
  const bytes = typeof keyBytes === 'string' ? b64urlDecode(keyBytes) : new Uint8Array(keyBytes);
  if (bytes.length !== KEY_BYTES) throw new RangeError(`room key must be ${KEY_BYTES} bytes`);
  return subtle.importKey('raw', bytes, { name: 'AES-GCM' }, extractable, ['encrypt', 'decrypt']);
}

const isCryptoKey = (k) => typeof CryptoKey !== 'undefined' && k instanceof CryptoKey;
const asKey = (k) => (isCryptoKey(k) ? k : importKey(k));

// ------------------------------------------------------- encrypt / decrypt

// key: CryptoKey, raw bytes or base64url string. ivBytes is for test vectors
// only: reusing an IV with the same key breaks GCM, so real callers omit it.
export async function encrypt(key, plaintext, ivBytes = randomBytes(IV_BYTES)) {
  const iv = new Uint8Array(ivBytes);
  if (iv.length !== IV_BYTES) throw new RangeError(`iv must be ${IV_BYTES} bytes`);
  const ct = await subtle.encrypt({ name: 'AES-GCM', iv }, await asKey(key), enc.encode(plaintext));
  return { iv: b64urlEncode(iv), ciphertext: b64urlEncode(new Uint8Array(ct)) };
}

// Throws on a wrong key, tampering (tag mismatch), a bad IV or invalid UTF-8.
export async function decrypt(key, ivB64, ciphertextB64) {
  const iv = b64urlDecode(ivB64);
  if (iv.length !== IV_BYTES) throw new RangeError(`iv must be ${IV_BYTES} bytes`);
  const ct = b64urlDecode(ciphertextB64);
  const pt = await subtle.decrypt({ name: 'AES-GCM', iv }, await asKey(key), ct);
  return dec.decode(pt);
}

// -------------------------------------------------------- chat messages

// Builds and encrypts one chat message. Returns the wire fields plus the
// plaintext object so the sender can render its own message locally (the
// server does not echo it back).
export async function sealMessage(key, { text, name }) {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_TEXT) {
    throw new RangeError(`message text must be 1..${MAX_TEXT} characters`);
  }
  const msg = { text, name: String(name).slice(0, MAX_NAME), id: randomMessageId(), ts: Date.now() };
  const { iv, ciphertext } = await encrypt(key, JSON.stringify(msg));
  return { iv, ciphertext, msg };
}

// Decrypts an envelope {iv, ciphertext} and validates the plaintext shape.
// Anything malformed throws: the UI drops it rather than render half a message.
export async function openMessage(key, envelope) {
  const obj = JSON.parse(await decrypt(key, envelope.iv, envelope.ciphertext));
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new TypeError('message: not an object');
  const { text, name, id, ts } = obj;
  if (typeof text !== 'string' || text.length > MAX_TEXT) throw new TypeError('message: bad text');
  if (typeof id !== 'string' || !ID_RE.test(id)) throw new TypeError('message: bad id');
  if (typeof ts !== 'number' || !Number.isFinite(ts)) throw new TypeError('message: bad ts');
  return { text, name: typeof name === 'string' ? name.slice(0, MAX_NAME) : '', id, ts };
}
