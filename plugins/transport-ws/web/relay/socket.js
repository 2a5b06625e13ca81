// The relay WebSocket dialect (`protocol: relay`, path /ws): challenge -> auth -> join_blob,
// then `refresh` whenever a blob for us is stored. The same authenticated socket is shared
// with other modules (the call UI): `on(type, fn)` to receive frames `{"type": type, …}`,
// `send(obj)` to send them once `authed`.
//
// Auth signs the UTF-8 bytes of 'parley-relay-auth-v1\n' + nonce (docs/relay-identities.md).
// A gateway without the relay dialect refuses the upgrade; the client then keeps polling and
// retries the socket with backoff.

import { b64encode } from './crypto.js';

const enc = new TextEncoder();
const AUTH_PREFIX = 'parley-relay-auth-v1\n';
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

export class RelaySocket {
  constructor(signer, { url } = {}) {
    this.signer = signer;
    this.url = url ?? `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
    this.handlers = new Map(); // type -> Set<fn>
    this.ws = null;
    this.authed = false;
    this.stopped = false;
    this.backoff = BACKOFF_MIN_MS;
    this.timer = null;
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type)?.delete(fn);
  }

  emit(type, frame) {
    for (const fn of this.handlers.get(type) ?? []) {
      try { fn(frame); } catch (e) { console.error('relay socket handler', e); }
    }
  }

  // False until authenticated: frames sent earlier would close the socket (1008).
  send(obj) {
    if (!this.authed || this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000, 'bye');
  }

  connect() {
    if (this.stopped) return;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    this.authed = false;
    ws.onmessage = async (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (typeof frame?.type !== 'string') return;
      if (!this.authed) {
        if (frame.type === 'challenge' && typeof frame.nonce === 'string') {
          const sig = await this.signer.sign(enc.encode(AUTH_PREFIX + frame.nonce));
          if (ws.readyState === WebSocket.OPEN) {
            ws.send(JSON.stringify({ type: 'auth', publicKey: this.signer.publicKey, signature: b64encode(sig) }));
          }
        } else if (frame.type === 'authed') {
          this.authed = true;
          this.backoff = BACKOFF_MIN_MS;
          ws.send(JSON.stringify({ type: 'join_blob' }));
          this.emit('authed', frame);
        } else if (frame.type === 'error') {
          this.emit('auth_error', frame);
        }
        return;
      }
      this.emit(frame.type, frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      const was = this.authed;
      this.authed = false;
      this.ws = null;
      if (was) this.emit('down', {});
      this.retry();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  retry() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
  }
}
