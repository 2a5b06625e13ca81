// The relay blob API (plugins/relay) in secure mode: every POST/GET/DELETE on /api/blobs*
// carries a request proof (plugins/relay/README.md):
//   X-Parley-Key       base64 Ed25519 public key
//   X-Parley-Timestamp unix seconds
//   X-Parley-Signature Ed25519 over METHOD \n TARGET \n TIMESTAMP \n hex(SHA-256(body))
// A random `n` query parameter makes each request unique (the server refuses replays).

import { b64encode, hex, sha256Hex } from './crypto.js';

const enc = new TextEncoder();
const EMPTY = new Uint8Array(0);

export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export class RelayApi {
  // signer: crypto.importSigner's result. base: '' (same origin) or an origin.
  constructor(signer, { base = '' } = {}) {
    this.signer = signer;
    this.base = base;
  }

  async request(method, path, params = {}, body = EMPTY) {
    const q = new URLSearchParams(params);
    q.set('n', hex(crypto.getRandomValues(new Uint8Array(8))));
    const target = `${path}?${q}`;
    const ts = String(Math.floor(Date.now() / 1000));
    const sig = await this.signer.sign(enc.encode(`${method}\n${target}\n${ts}\n${await sha256Hex(body)}`));
    const headers = {
      'X-Parley-Key': this.signer.publicKey,
      'X-Parley-Timestamp': ts,
      'X-Parley-Signature': b64encode(sig),
    };
    if (method === 'POST') headers['Content-Type'] = 'application/octet-stream';
    const res = await fetch(this.base + target, {
      method, headers, body: method === 'POST' ? body : undefined, cache: 'no-store', credentials: 'omit',
    });
    if (!res.ok) {
      let msg = `HTTP ${res.status}`;
      try { msg = (await res.json()).error ?? msg; } catch { /* not JSON */ }
      throw new ApiError(res.status, msg, Number(res.headers.get('Retry-After')) || 0);
    }
    return res.status === 204 ? null : res.json();
  }

  // -> {id, expiresAt}
  postBlob(recipientKeyHash, packet) {
    return this.request('POST', '/api/blobs', { recipientKeyHash }, packet);
  }

  // -> [{id, payload (base64), expiresAt}] of our own box, soonest expiry first.
  listBlobs(myKeyHash) {
    return this.request('GET', '/api/blobs', { recipientKeyHash: myKeyHash });
  }

  // 404 (already gone) counts as deleted.
  async deleteBlob(id) {
    try {
      await this.request('DELETE', `/api/blobs/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.status !== 404) throw e;
    }
  }
}
