// Identity files made by `parley identities generate` (docs/relay-identities.md): parsed and
// checked here, keys imported as non-extractable CryptoKeys (or tweetnacl closures). The file's
// text is never stored or sent anywhere; the caller drops it after this returns.

import { b64decode, importExchange, importSigner, keyHashOf } from './crypto.js';

const HASH_RE = /^[0-9a-f]{64}$/;

function key32(b64, what) {
  const k = b64decode(b64);
  if (k.length !== 32) throw new Error(`bad ${what}`);
  return k;
}

// -> { keyHash, member, circle, signer, exchange, directory: [{member, keyHash, signingPublicKey,
//      exchangePublicKey, exchangeRaw, self}] }
export async function loadIdentity(text, opts = {}) {
  let j;
  try { j = JSON.parse(text); } catch { throw new Error('not a JSON file'); }
  if (j?.format !== 'parley-relay-identity' || j.version !== 1) throw new Error('not a parley relay identity file');
  if (j.signing?.algorithm !== 'Ed25519' || j.exchange?.algorithm !== 'X25519') throw new Error('unsupported key algorithms');
  const signPub = key32(j.signing.publicKey, 'signing public key');
  const keyHash = await keyHashOf(j.signing.publicKey);
  if (j.keyHash !== keyHash) throw new Error('key hash does not match the signing key');
  if (!Array.isArray(j.directory) || j.directory.length === 0 || j.directory.length > 1000) throw new Error('bad directory');

  const directory = [];
  const seen = new Set();
  for (const e of j.directory) {
    const exchangeRaw = key32(e?.exchangePublicKey, 'exchange public key');
    key32(e?.signingPublicKey, 'signing public key');
    if (!HASH_RE.test(e.keyHash) || e.keyHash !== await keyHashOf(e.signingPublicKey)) throw new Error('bad directory entry');
    if (seen.has(e.keyHash) || seen.has(e.exchangePublicKey)) throw new Error('duplicate directory entry');
    seen.add(e.keyHash).add(e.exchangePublicKey);
    directory.push({
      member: Number.isInteger(e.member) ? e.member : directory.length + 1,
      keyHash: e.keyHash,
      signingPublicKey: e.signingPublicKey,
      exchangePublicKey: e.exchangePublicKey,
      exchangeRaw,
      self: e.keyHash === keyHash,
    });
  }
  const me = directory.find((e) => e.self);
  if (!me || me.exchangePublicKey !== j.exchange.publicKey) throw new Error('this identity is not in its own directory');

  const signSecret = b64decode(j.signing.secretKey);
  const exSecret = b64decode(j.exchange.secretKey);
  try {
    const signer = await importSigner(signSecret, signPub, opts);
    const exchange = await importExchange(exSecret, key32(j.exchange.publicKey, 'exchange public key'), opts);
    return {
      keyHash, member: me.member, circle: typeof j.circle === 'string' ? j.circle : '', signer, exchange, directory,
    };
  } finally {
    signSecret.fill(0);
    exSecret.fill(0);
  }
}
