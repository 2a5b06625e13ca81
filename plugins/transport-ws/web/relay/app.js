// parley relay web client: load an identity file (kept in memory only), pick a member of the
// circle, send end-to-end encrypted text and files as 64 KiB blobs, read and delete our own.
//
// Runs under a strict CSP with Trusted Types enforced, so the DOM is built only with
// createElement/textContent — never innerHTML or inline handlers.
//
// Test hooks (tests/browser/relay-web.test.mjs): body[data-state] is 'locked' before an
// identity is loaded and 'ready' once the first mailbox read finished; body[data-live] is 'ws'
// while the authenticated WebSocket delivers `refresh` notifications, else 'poll';
// body[data-crypto] names the curve backend ('webcrypto' or 'tweetnacl').

import { RelayApi } from './api.js';
import { b64encode } from './crypto.js';
import { loadIdentity } from './identity.js';
import { Mailbox, MAX_FILE_BYTES } from './mailbox.js';
import { RelaySocket } from './socket.js';
import { session } from './session.js';

const $ = (id) => document.getElementById(id);
const POLL_MS = 5000; // without notifications
const SAFETY_POLL_MS = 60_000; // with notifications (a lost `refresh` costs at most this)

const state = {
  identity: null,
  mailbox: null,
  socket: null,
  peer: null, // key hash of the open conversation
  threads: new Map(), // key hash -> [{dir, kind, text?, file?, at}]
  unread: new Map(),
  pollTimer: null,
};

const setPageState = (s) => { document.body.dataset.state = s; };

function showError(text) {
  const el = $('error');
  el.textContent = text ?? '';
  el.hidden = !text;
}

function setStatus(s, text) {
  const el = $('status');
  el.dataset.state = s;
  el.textContent = text;
}

const memberName = (e) => (e.self ? `Member ${String(e.member).padStart(2, '0')} (you)` : `Member ${String(e.member).padStart(2, '0')}`);
const fmtSize = (n) => (n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / (1 << 20)).toFixed(1)} MiB`);

// ------------------------------------------------------------------ identity

function showLoad() {
  $('load-view').hidden = false;
  $('app-view').hidden = true;
  setPageState('locked');
  const input = $('identity-file');
  input.addEventListener('change', async () => {
    const file = input.files?.[0];
    input.value = ''; // the File object is the only reference to the secret text: drop it
    if (!file) return;
    $('load-error').hidden = true;
    try {
      if (file.size > 1 << 20) throw new Error('this is not an identity file (too large)');
      const identity = await loadIdentity(await file.text());
      await start(identity);
    } catch (e) {
      $('load-error').textContent = `Cannot use this file: ${e.message}`;
      $('load-error').hidden = false;
    }
  });
}

// ------------------------------------------------------------------ main view

async function start(identity) {
  state.identity = identity;
  session.identity = identity;
  document.body.dataset.crypto = identity.signer.backend; // 'webcrypto' or 'tweetnacl'
  const api = new RelayApi(identity.signer);
  state.mailbox = new Mailbox(identity, api, {
    onMessage: (m, sender) => receive(m, sender),
    onProgress: (p) => progress(p),
  });
  $('load-view').hidden = true;
  $('app-view').hidden = false;
  $('circle-name').textContent = identity.circle || '—';
  const me = identity.directory.find((e) => e.self);
  $('me-name').textContent = memberName(me).replace(' (you)', '');
  $('me-hash').textContent = identity.keyHash.slice(0, 12);
  renderDirectory();
  wireComposer();
  $('refresh').addEventListener('click', () => syncNow());
  $('lock').addEventListener('click', () => { location.reload(); });

  const socket = new RelaySocket(identity.signer);
  state.socket = socket;
  session.socket = socket;
  socket.on('authed', () => { setLive('ws'); syncNow(); });
  socket.on('down', () => setLive('poll'));
  socket.on('refresh', () => syncNow());
  setLive('poll');
  socket.start();

  await syncNow();
  setPageState('ready');
  session.ready();
}

function setLive(mode) {
  document.body.dataset.live = mode;
  setStatus('online', mode === 'ws' ? 'Live' : 'Online (polling)');
  clearInterval(state.pollTimer);
  state.pollTimer = setInterval(() => syncNow(), mode === 'ws' ? SAFETY_POLL_MS : POLL_MS);
}

async function syncNow() {
  try {
    await state.mailbox.sync();
    showError('');
  } catch (e) {
    setStatus('offline', 'Offline');
    showError(e.status === 401 ? 'The server refused this identity (not on the allowlist, or this device\'s clock is off).'
      : `Cannot read the mailbox: ${e.message}`);
  }
}

function renderDirectory() {
  const ul = $('directory');
  ul.replaceChildren();
  for (const e of state.identity.directory) {
    if (e.self) continue;
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'member';
    b.dataset.keyHash = e.keyHash;
    b.setAttribute('aria-current', String(state.peer === e.keyHash));
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = memberName(e);
    const hash = document.createElement('span');
    hash.className = 'hash';
    hash.textContent = e.keyHash.slice(0, 8);
    b.append(name, hash);
    const n = state.unread.get(e.keyHash) ?? 0;
    if (n > 0) {
      const u = document.createElement('span');
      u.className = 'unread';
      u.textContent = String(n);
      b.append(u);
    }
    b.addEventListener('click', () => openConversation(e.keyHash));
    li.append(b);
    ul.append(li);
  }
}

function openConversation(keyHash) {
  state.peer = keyHash;
  state.unread.delete(keyHash);
  const e = state.identity.directory.find((d) => d.keyHash === keyHash);
  $('peer-title').textContent = `To ${memberName(e)} · ${keyHash.slice(0, 12)}`;
  $('conversation').dataset.peer = keyHash;
  for (const id of ['composer', 'file-input', 'send']) $(id).disabled = false;
  renderDirectory();
  renderThread();
  $('composer').focus();
}

function renderThread() {
  const ol = $('messages');
  ol.replaceChildren();
  for (const m of state.threads.get(state.peer) ?? []) ol.append(messageNode(m));
  ol.scrollTop = ol.scrollHeight;
}

function messageNode(m) {
  const li = document.createElement('li');
  li.className = m.dir === 'out' ? 'msg own' : 'msg';
  li.dataset.dir = m.dir;
  li.dataset.kind = m.kind;
  li.dataset.from = m.from;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = m.dir === 'out' ? 'You' : m.fromName;
  const time = document.createElement('time');
  time.dateTime = new Date(m.at).toISOString();
  time.textContent = new Date(m.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  meta.append(name, time);
  li.append(meta);
  if (m.kind === 'file') {
    const a = document.createElement('a');
    a.className = 'file';
    a.href = m.url;
    a.download = m.filename;
    a.dataset.size = String(m.size);
    a.textContent = `File: ${m.filename} (${fmtSize(m.size)})`;
    li.append(a);
  } else {
    const t = document.createElement('div');
    t.className = 'text';
    t.textContent = m.text;
    li.append(t);
  }
  return li;
}

function addToThread(peer, m) {
  if (!state.threads.has(peer)) state.threads.set(peer, []);
  const list = state.threads.get(peer);
  list.push(m);
  list.sort((a, b) => a.at - b.at);
  if (peer === state.peer) {
    renderThread();
  } else {
    state.unread.set(peer, (state.unread.get(peer) ?? 0) + 1);
    renderDirectory();
  }
}

function receive(m, sender) {
  const base = { dir: 'in', from: sender.keyHash, fromName: memberName(sender), at: m.sentAt };
  if (m.type === 'text') {
    addToThread(sender.keyHash, { ...base, kind: 'text', text: m.body });
  } else if (m.type === 'file') {
    const blob = new Blob([m.bytes], { type: 'application/octet-stream' }); // never rendered inline
    addToThread(sender.keyHash, {
      ...base, kind: 'file', filename: m.filename, size: m.bytes.length, url: URL.createObjectURL(blob),
    });
  } else {
    session.message(m, sender); // other kinds (e.g. call events) belong to extensions
  }
}

// ------------------------------------------------------------------ sending

function progress(p) {
  const el = $('progress');
  if (p.waiting) el.textContent = `Rate limited by the server: retrying in ${p.retryAfter || 1} s…`;
  else if (p.total > 1) el.textContent = `Sent ${p.sent} of ${p.total} blobs…`;
}

let sending = Promise.resolve();
// One send at a time, in order.
function enqueue(fn) {
  sending = sending.then(fn).catch((e) => {
    showError(e.status === 429 ? 'The recipient\'s mailbox is busy; try again in a minute.' : `Not sent: ${e.message}`);
  });
  return sending;
}

function wireComposer() {
  const composer = $('composer');
  const send = () => {
    const text = composer.value;
    if (!text.trim() || !state.peer) return;
    const peer = state.peer;
    composer.value = '';
    enqueue(async () => {
      const { message } = await state.mailbox.send(peer, { type: 'text', body: text });
      addToThread(peer, { dir: 'out', kind: 'text', text, from: state.identity.keyHash, at: message.sentAt });
      $('progress').textContent = '';
    });
  };
  $('send').addEventListener('click', send);
  composer.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  const input = $('file-input');
  input.addEventListener('change', () => {
    const file = input.files?.[0];
    input.value = '';
    if (!file || !state.peer) return;
    if (file.size > MAX_FILE_BYTES) {
      showError(`Files up to ${fmtSize(MAX_FILE_BYTES)} only.`);
      return;
    }
    const peer = state.peer;
    enqueue(async () => {
      const bytes = new Uint8Array(await file.arrayBuffer());
      $('progress').textContent = `Encrypting ${file.name}…`;
      const { message, blobs } = await state.mailbox.send(peer, {
        type: 'file', body: b64encode(bytes), filename: file.name, fileSize: bytes.length,
      });
      const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
      addToThread(peer, {
        dir: 'out', kind: 'file', filename: file.name, size: bytes.length, url, from: state.identity.keyHash, at: message.sentAt,
      });
      $('progress').textContent = `Sent ${file.name} in ${blobs} blobs.`;
    });
  });
}

showLoad();
