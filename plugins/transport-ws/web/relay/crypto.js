// Crypto of the parley relay web client. Works in browsers and in Node >= 20 (the tests
// import it), with no dependencies:
//
// - identity: Ed25519 signing key (request proofs, WebSocket auth) + X25519 exchange key
//   (end-to-end encryption), both from a `parley identities generate` file;
// - per message: X25519(me, peer) -> HKDF-SHA-256(salt "Relay-E2EE-v1", info = 16-byte
//   message id) -> AES-256-GCM key; each chunk is IV(12) || ciphertext || tag(16) with the
//   message id as additional data (Relay's V1 construction, X25519 in place of P-256).
//
// Private keys are imported as non-extractable CryptoKeys. Where WebCrypto lacks Ed25519 or
// X25519, tweetnacl (vendor/nacl-fast.min.js, served by the gateway, never a CDN) does the
// curve operations instead; the secret bytes then live only in this module's closures.

const enc = new TextEncoder();

export const HKDF_SALT = enc.encode('Relay-E2EE-v1');
export const IV_BYTES = 12;
export const TAG_BYTES = 16;

// ---------------------------------------------------------------- encodings

export function b64encode(u8) {
  let s = '';
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
  return btoa(s);
}

// Strict standard base64 (with padding), as identity files and the blob API use.
export function b64decode(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) {
    throw new Error('bad base64');
  }
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const b64url = (u8) => b64encode(u8).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

export const hex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, '0')).join('');

export async function sha256Hex(data) {
  const bytes = typeof data === 'string' ? enc.encode(data) : data;
  return hex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
}

// keyHash = lowercase hex(SHA-256(base64(raw Ed25519 public key))) — docs/relay-identities.md.
export const keyHashOf = (publicKeyB64) => sha256Hex(publicKeyB64);

export function uuidToBytes(uuid) {
  const h = String(uuid).replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new Error('bad message id');
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToUuid(b) {
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

// ---------------------------------------------------------------- curve backends

let probe = null;
// Whether this WebCrypto does Ed25519 and X25519 (Chromium >= 137, Node >= 20).
async function webCryptoCurves() {
  probe ??= (async () => {
    try {
      await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
      await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
      return true;
    } catch {
      return false;
    }
  })();
  return probe;
}

function nacl() {
  const n = globalThis.nacl;
  if (!n?.sign?.detached || !n?.scalarMult) throw new Error('no Ed25519/X25519 available (WebCrypto or tweetnacl)');
  return n;
}

const isAllZero = (u8) => u8.every((b) => b === 0);

// A signer over the identity's Ed25519 key: { publicKey (b64), sign(bytes) -> Uint8Array(64) }.
// `secretKey` is libsodium's 64-byte layout (seed || public key).
export async function importSigner(secretKey, publicKey, { backend } = {}) {
  if (secretKey.length !== 64 || publicKey.length !== 32) throw new Error('bad signing key');
  const seed = secretKey.slice(0, 32);
  if (hex(secretKey.slice(32)) !== hex(publicKey)) throw new Error('signing key pair mismatch');
  const useWeb = backend ? backend === 'webcrypto' : await webCryptoCurves();
  let sign;
  if (useWeb) {
    const key = await crypto.subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', d: b64url(seed), x: b64url(publicKey) },
      { name: 'Ed25519' }, false, ['sign']);
    sign = async (bytes) => new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, key, bytes));
  } else {
    const sk = Uint8Array.from(secretKey);
    sign = async (bytes) => nacl().sign.detached(bytes, sk);
  }
  seed.fill(0);
  // A file whose seed does not match its public key would sign with the wrong key: refuse it.
  const test = enc.encode('parley-relay-selftest');
  const sig = await sign(test);
  const pub = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']).catch(() => null);
  const ok = pub ? await crypto.subtle.verify({ name: 'Ed25519' }, pub, sig, test)
    : nacl().sign.detached.verify(test, sig, publicKey);
  if (!ok) throw new Error('signing key pair mismatch');
  return { publicKey: b64encode(publicKey), sign, backend: useWeb ? 'webcrypto' : 'tweetnacl' };
}

// The X25519 side: { publicKey (b64), sharedBits(peerPublicRaw) -> Uint8Array(32) }.
export async function importExchange(secretKey, publicKey, { backend } = {}) {
  if (secretKey.length !== 32 || publicKey.length !== 32) throw new Error('bad exchange key');
  const useWeb = backend ? backend === 'webcrypto' : await webCryptoCurves();
  let sharedBits;
  if (useWeb) {
    const key = await crypto.subtle.importKey('jwk', { kty: 'OKP', crv: 'X25519', d: b64url(secretKey), x: b64url(publicKey) },
      { name: 'X25519' }, false, ['deriveBits']);
    sharedBits = async (peer) => {
      const pub = await crypto.subtle.importKey('raw', peer, { name: 'X25519' }, false, []);
      return new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: pub }, key, 256));
    };
  } else {
    const sk = Uint8Array.from(secretKey);
    if (hex(nacl().scalarMult.base(sk)) !== hex(publicKey)) throw new Error('exchange key pair mismatch');
    sharedBits = async (peer) => nacl().scalarMult(sk, peer);
  }
  const checked = async (peer) => {
    if (!(peer instanceof Uint8Array) || peer.length !== 32) throw new Error('bad peer key');
    const s = await sharedBits(peer);
    if (isAllZero(s)) throw new Error('bad peer key'); // small-order point
    return s;
  };
  return { publicKey: b64encode(publicKey), sharedBits: checked, backend: useWeb ? 'webcrypto' : 'tweetnacl' };
}

// ---------------------------------------------------------------- per-message keys

// HKDF base key for one peer (non-extractable); the raw shared secret is wiped.
export async function peerBaseKey(exchange, peerPublicRaw) {
  const bits = await exchange.sharedBits(peerPublicRaw);
  try {
    return await crypto.subtle.importKey('raw', bits, 'HKDF', false, ['deriveKey']);
  } finally {
    bits.fill(0);
  }
}

export function messageKey(baseKey, messageIdBytes) {
  return crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: HKDF_SALT, info: messageIdBytes },
    baseKey, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
}

// IV || AES-GCM(plain, aad) (ciphertext and 16-byte tag).
export async function seal(key, plain, aad) {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 }, key, plain));
  const out = new Uint8Array(IV_BYTES + ct.length);
  out.set(iv);
  out.set(ct, IV_BYTES);
  return out;
}

export async function open(key, sealed, aad) {
  if (sealed.length < IV_BYTES + TAG_BYTES) throw new Error('short ciphertext');
  const iv = sealed.subarray(0, IV_BYTES);
  return new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: aad, tagLength: 128 },
    key, sealed.subarray(IV_BYTES)));
}
