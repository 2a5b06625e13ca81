// Shared set-up of the tests that drive the relay plugin (its Socket.IO dialect with npm
// socket.io-client, its /ws dialect with `ws`): a circle of identities made by
// `parley identities generate`, signed blob POSTs, a parleyd on a signaling profile template
// (tests/browser/profiles/signaling*.yaml.in) and client sockets that record every event.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import nacl from 'tweetnacl';
import { io } from 'socket.io-client';
import { freePort, startParleyd, writeProfile } from './harness.mjs';

// Runs `parley identities generate` into <dir>/ids (allowlist.json included); returns the parsed
// identity-0N.json files, first member first.
export function generateIdentities(dir, { circle, count = 3, cli = process.env.PARLEY_CLI } = {}) {
  const out = path.join(dir, 'ids');
  execFileSync(cli, ['identities', 'generate', '--count', String(count), '--out', out, '--circle', circle], { stdio: 'pipe' });
  return Array.from({ length: count }, (_, i) => JSON.parse(fs.readFileSync(path.join(out, `identity-0${i + 1}.json`), 'utf8')));
}

// A member as the relay plugin knows it: its key hash and its Ed25519 key pair (tweetnacl).
export const relayMember = (identity) => ({
  keyHash: identity.keyHash,
  keyPair: nacl.sign.keyPair.fromSecretKey(Buffer.from(identity.signing.secretKey, 'base64')),
});

const b64 = (u8) => Buffer.from(u8).toString('base64');
const sha256hex = (data) => crypto.createHash('sha256').update(data).digest('hex');

// Signed POST of one 64 KiB blob from `sender` (a relayMember) for recipientHash, as the relay
// plugin's secure mode wants it; asserts 201 and returns the response.
export async function postSignedBlob(url, sender, recipientHash) {
  const body = crypto.randomBytes(65536);
  const target = `/api/blobs?recipientKeyHash=${recipientHash}&n=${crypto.randomBytes(8).toString('hex')}`;
  const ts = String(Math.floor(Date.now() / 1000));
  const msg = `POST\n${target}\n${ts}\n${sha256hex(body)}`;
  const sig = nacl.sign.detached(Buffer.from(msg, 'utf8'), sender.keyPair.secretKey);
  const res = await fetch(`${url}${target}`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/octet-stream',
      'X-Parley-Key': b64(sender.keyPair.publicKey),
      'X-Parley-Timestamp': ts,
      'X-Parley-Signature': b64(sig),
    },
    body,
  });
  assert.equal(res.status, 201, await res.clone().text());
  return res;
}

// Starts parleyd on a copy of a signaling profile template written into `dir` (state, log and
// TURN secret file there too), with the allowlist generateIdentities(dir) wrote and the call
// room `call-test` for member1 and member2 (key hashes). No TURN server is needed unless a test
// starts one on turnPort with turnSecret.
export async function startSignalingParleyd(template, dir, { member1, member2, turnPort = 3478, turnSecret = 'unused-here' }) {
  await fsp.writeFile(path.join(dir, 'turn.secret'), `${turnSecret}\n`);
  const port = await freePort();
  const profile = await writeProfile(template, {
    port,
    stateDir: path.join(dir, 'state'),
    dir,
    vars: {
      ALLOWLIST: path.join(dir, 'ids', 'allowlist.json'),
      MEMBER1: member1,
      MEMBER2: member2,
      TURN_PORT: String(turnPort),
      TURN_SECRET_FILE: path.join(dir, 'turn.secret'),
    },
  });
  return startParleyd({ profile, port, logFile: path.join(dir, 'parleyd.log') });
}

// A socket.io-client socket to parleyd's /socket.io that records every event (and its
// disconnect reason) in s.events. Reconnection is off so a refused socket cannot mask a failure
// by reconnecting. The socket is added to `sockets` (for after() to close).
export function openSocket(url, { sockets, transports = ['websocket'] } = {}) {
  const s = io(url, { path: '/socket.io', transports, reconnection: false, timeout: 5000 });
  sockets?.push(s);
  s.events = [];
  s.onAny((event, ...args) => s.events.push({ event, args }));
  s.on('disconnect', (reason) => s.events.push({ event: 'disconnect', args: [reason] }));
  return s;
}

// Resolves with the arguments of the next `event` on s; rejects after ms with what s got.
export function nextEvent(s, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms; got ${JSON.stringify(s.events)}`)), ms);
    s.once(event, (...args) => { clearTimeout(t); resolve(args); });
  });
}
