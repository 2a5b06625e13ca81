// Blob payload of the relay web client: Relay's V1 packet layout and chunk/message JSON
// (see README.md). Pure functions, no DOM: the tests import this file in Node.
//
// packet (exactly BLOB_SIZE bytes):
//   [1  version = 1]
//   [2  sender length, big-endian][sender: base64 of the sender's X25519 public key (44 B)]
//   [16 message id (UUID bytes)]
//   [2  ciphertext length, big-endian][ciphertext: IV || AES-GCM || tag]
//   [padding to BLOB_SIZE]
// Our chunks' plaintext is padded (JSON whitespace) so the ciphertext always fills the packet:
// every blob has the same ciphertext length, whatever the message size.

import {
  b64decode, b64encode, bytesToUuid, messageKey, open, seal, uuidToBytes, IV_BYTES, TAG_BYTES,
} from './crypto.js';

export const BLOB_SIZE = 65536;
export const PACKET_VERSION = 1;
export const SENDER_B64_LEN = 44; // base64 of a 32-byte key
export const HEADER_BYTES = 1 + 2 + SENDER_B64_LEN + 16 + 2;
export const CIPHERTEXT_MAX = BLOB_SIZE - HEADER_BYTES;
export const CHUNK_PLAIN_BYTES = CIPHERTEXT_MAX - IV_BYTES - TAG_BYTES;
// Raw message bytes per chunk: base64 (x4/3) plus the chunk's JSON fields must fit
// CHUNK_PLAIN_BYTES. A multiple of 3, so fragments other than the last have no '='.
export const FRAGMENT_BYTES = 48_000;
export const MAX_CHUNKS = 512;

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function buildPacket(senderB64, messageIdBytes, ciphertext) {
  const sender = enc.encode(senderB64);
  if (sender.length + ciphertext.length + 21 > BLOB_SIZE) throw new Error('chunk too large for one blob');
  const u8 = new Uint8Array(BLOB_SIZE);
  const view = new DataView(u8.buffer);
  let off = 0;
  u8[off++] = PACKET_VERSION;
  view.setUint16(off, sender.length, false);
  off += 2;
  u8.set(sender, off);
  off += sender.length;
  u8.set(messageIdBytes, off);
  off += 16;
  view.setUint16(off, ciphertext.length, false);
  off += 2;
  u8.set(ciphertext, off);
  off += ciphertext.length;
  // Padding (none with our own full-size chunks): random, not zeros, so nothing marks its start.
  if (off < BLOB_SIZE) crypto.getRandomValues(u8.subarray(off));
  return u8;
}

// -> { sender (b64 string), messageIdBytes, messageId, ciphertext } or throws.
export function parsePacket(u8) {
  if (!(u8 instanceof Uint8Array) || u8.length !== BLOB_SIZE) throw new Error('not a blob');
  if (u8[0] !== PACKET_VERSION) throw new Error('unsupported packet version');
  const view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  let off = 1;
  const senderLen = view.getUint16(off, false);
  off += 2;
  if (senderLen === 0 || senderLen > 512 || off + senderLen + 18 > BLOB_SIZE) throw new Error('bad sender');
  const sender = dec.decode(u8.subarray(off, off + senderLen));
  off += senderLen;
  const messageIdBytes = u8.slice(off, off + 16);
  off += 16;
  const ctLen = view.getUint16(off, false);
  off += 2;
  if (ctLen < IV_BYTES + TAG_BYTES || off + ctLen > BLOB_SIZE) throw new Error('bad ciphertext length');
  return { sender, messageIdBytes, messageId: bytesToUuid(messageIdBytes), ciphertext: u8.slice(off, off + ctLen) };
}

// Splits a message's UTF-8 JSON into chunk objects (Relay's ChunkPlaintext). Boundaries never
// fall inside a UTF-8 sequence, so readers that decode each fragment on its own (Relay does)
// still get the right text.
export function chunkMessage(bytes, messageId) {
  const chunks = [];
  let start = 0;
  while (start < bytes.length || chunks.length === 0) {
    let end = Math.min(start + FRAGMENT_BYTES, bytes.length);
    while (end < bytes.length && end > start && (bytes[end] & 0xc0) === 0x80) end--;
    chunks.push({ messageId, chunkIndex: chunks.length, totalChunks: 0, fragmentBase64: b64encode(bytes.subarray(start, end)) });
    start = end;
    if (chunks.length > MAX_CHUNKS) throw new Error('message too large');
  }
  for (const c of chunks) c.totalChunks = chunks.length;
  return chunks;
}

// Chunk JSON padded with trailing spaces (valid JSON) to exactly CHUNK_PLAIN_BYTES.
export function encodeChunk(chunk) {
  const json = enc.encode(JSON.stringify(chunk));
  if (json.length > CHUNK_PLAIN_BYTES) throw new Error('chunk too large');
  const out = new Uint8Array(CHUNK_PLAIN_BYTES).fill(0x20);
  out.set(json);
  return out;
}

export function decodeChunk(plain) {
  const c = JSON.parse(dec.decode(plain));
  if (typeof c?.messageId !== 'string' || !Number.isInteger(c.chunkIndex) || !Number.isInteger(c.totalChunks)
    || typeof c.fragmentBase64 !== 'string' || c.totalChunks < 1 || c.totalChunks > MAX_CHUNKS
    || c.chunkIndex < 0 || c.chunkIndex >= c.totalChunks) {
    throw new Error('bad chunk');
  }
  return c;
}

// Concatenates the fragments of one message (all chunks present) and parses its JSON.
export function reassemble(chunks) {
  const sorted = [...chunks].sort((a, b) => a.chunkIndex - b.chunkIndex);
  const parts = sorted.map((c) => b64decode(c.fragmentBase64));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { all.set(p, off); off += p.length; }
  return JSON.parse(dec.decode(all));
}

// Message -> blob packets for one recipient. `baseKey` is the HKDF key shared with the
// recipient (crypto.peerBaseKey); `senderB64` our X25519 public key.
export async function sealMessage(message, { baseKey, senderB64, messageId = crypto.randomUUID() }) {
  const idBytes = uuidToBytes(messageId);
  const key = await messageKey(baseKey, idBytes);
  const packets = [];
  for (const chunk of chunkMessage(enc.encode(JSON.stringify(message)), messageId)) {
    packets.push(buildPacket(senderB64, idBytes, await seal(key, encodeChunk(chunk), idBytes)));
  }
  return packets;
}

// One packet -> its chunk, given the HKDF key shared with its sender. Throws if it is not ours.
export async function openPacket(parsed, baseKey) {
  const key = await messageKey(baseKey, parsed.messageIdBytes);
  const chunk = decodeChunk(await open(key, parsed.ciphertext, parsed.messageIdBytes));
  if (chunk.messageId.toLowerCase() !== parsed.messageId) throw new Error('message id mismatch');
  return chunk;
}
