// Sending to and reading from the blind mailbox (no DOM). Messages are Relay's decrypted
// message JSON ({senderKeyHash, sentAt, recipientKeyHash, type: 'text'|'file', body, …}),
// chunked into fixed-size encrypted blobs (packet.js). Reading decrypts every blob of our box,
// reassembles complete messages, hands them to `onMessage` and then deletes their blobs.

import { b64decode } from './crypto.js';
import { peerBaseKey } from './crypto.js';
import { BLOB_SIZE, openPacket, parsePacket, reassemble, sealMessage } from './packet.js';

export const MAX_FILE_BYTES = 4 << 20;
const MAX_RETRIES = 3;
const LIST_LIMIT_GUESS = 100; // the plugin's default list_limit: a full page means "list again"

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Mailbox {
  // identity: identity.loadIdentity's result; api: RelayApi.
  constructor(identity, api, { onMessage = () => {}, onProgress = () => {} } = {}) {
    this.id = identity;
    this.api = api;
    this.onMessage = onMessage;
    this.onProgress = onProgress;
    this.byHash = new Map(identity.directory.map((e) => [e.keyHash, e]));
    this.byExchange = new Map(identity.directory.map((e) => [e.exchangePublicKey, e]));
    this.baseKeys = new Map(); // keyHash -> Promise<CryptoKey (HKDF)>
    this.seen = new Set(); // blob ids already handled (chunk kept in `pending`, or not ours)
    this.pending = new Map(); // senderHash:messageId -> {sender, chunks: Map, blobIds: []}
    this.syncing = null;
    this.again = false;
  }

  baseKey(entry) {
    if (!this.baseKeys.has(entry.keyHash)) this.baseKeys.set(entry.keyHash, peerBaseKey(this.id.exchange, entry.exchangeRaw));
    return this.baseKeys.get(entry.keyHash);
  }

  // content: {type: 'text', body} or {type: 'file', body (base64), filename, fileSize}.
  async send(peerHash, content) {
    const peer = this.byHash.get(peerHash);
    if (!peer) throw new Error('not a member of this circle');
    const message = { ...content, senderKeyHash: this.id.keyHash, sentAt: Date.now(), recipientKeyHash: peerHash };
    const packets = await sealMessage(message, { baseKey: await this.baseKey(peer), senderB64: this.id.exchange.publicKey });
    for (const [i, p] of packets.entries()) {
      for (let attempt = 0; ; attempt++) {
        try {
          await this.api.postBlob(peerHash, p);
          break;
        } catch (e) {
          if (e.status !== 429 || attempt >= MAX_RETRIES) throw e;
          this.onProgress({ waiting: true, retryAfter: e.retryAfter });
          await sleep(Math.min(Math.max(e.retryAfter, 1), 60) * 1000);
        }
      }
      this.onProgress({ sent: i + 1, total: packets.length });
    }
    return { message, blobs: packets.length };
  }

  // Reads the box until nothing new is complete. Concurrent calls coalesce into one more pass.
  sync() {
    if (this.syncing) {
      this.again = true;
      return this.syncing;
    }
    this.syncing = (async () => {
      try {
        let passes = 0;
        do {
          this.again = false;
          const deleted = await this.pass();
          if (deleted > 0 && this.lastListSize >= LIST_LIMIT_GUESS) this.again = true;
        } while (this.again && ++passes < 20);
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  async pass() {
    const items = await this.api.listBlobs(this.id.keyHash);
    this.lastListSize = items.length;
    const complete = [];
    for (const item of items) {
      if (typeof item?.id !== 'string' || this.seen.has(item.id)) continue;
      this.seen.add(item.id);
      const got = await this.openItem(item).catch(() => null);
      if (!got) continue; // not for us / not our format: left to expire (another client may read it)
      const { sender, chunk } = got;
      const k = `${sender.keyHash}:${chunk.messageId}`;
      let p = this.pending.get(k);
      if (!p) this.pending.set(k, (p = { sender, chunks: new Map(), blobIds: [], total: chunk.totalChunks }));
      if (chunk.totalChunks !== p.total) continue;
      p.blobIds.push(item.id);
      p.chunks.set(chunk.chunkIndex, chunk);
      if (p.chunks.size === p.total) {
        this.pending.delete(k);
        complete.push(p);
      }
    }
    let deleted = 0;
    for (const p of complete) {
      const msg = this.checkMessage(p);
      if (msg) this.onMessage(msg, p.sender);
      // Read (or unreadable garbage from a member): either way it leaves the box.
      for (const id of p.blobIds) {
        await this.api.deleteBlob(id);
        deleted++;
      }
    }
    return deleted;
  }

  async openItem(item) {
    const bytes = b64decode(item.payload);
    if (bytes.length !== BLOB_SIZE) return null;
    const parsed = parsePacket(bytes);
    const sender = this.byExchange.get(parsed.sender);
    if (!sender) return null;
    return { sender, chunk: await openPacket(parsed, await this.baseKey(sender)) };
  }

  // The reassembled message, if it is well-formed and claims the sender whose key decrypted it.
  checkMessage(p) {
    let m;
    try { m = reassemble([...p.chunks.values()]); } catch { return null; }
    if (typeof m !== 'object' || m === null || m.senderKeyHash !== p.sender.keyHash) return null;
    if (m.recipientKeyHash !== undefined && m.recipientKeyHash !== this.id.keyHash) return null;
    if (typeof m.type !== 'string') return null;
    if ((m.type === 'text' || m.type === 'file') && typeof m.body !== 'string') return null;
    if (m.type === 'file') {
      try { m.bytes = b64decode(m.body); } catch { return null; }
      if (typeof m.filename !== 'string') m.filename = 'file';
    }
    if (!Number.isFinite(m.sentAt)) m.sentAt = Date.now();
    return m;
  }
}
