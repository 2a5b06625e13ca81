// parley link-room client: one invite link = one room, AES-GCM in the browser,
// the gateway only relays and stores ciphertext.
//
// Runs under a strict CSP with Trusted Types enforced, so the DOM is built only
// with createElement/textContent — never innerHTML or inline handlers.

import {
  b64urlDecode, b64urlEncode, generateKeyBytes, importKey, randomClientId, randomRoomId,
  sealMessage, openMessage, MAX_TEXT, KEY_BYTES,
} from '/crypto.js';
import { getRoom, putRoom, deleteRoom } from '/store.js';
import { displayName, hueIndex } from '/names.js';

const $ = (id) => document.getElementById(id);
const ROOM_PATH_RE = /^\/room\/([A-Za-z0-9_-]{1,64})\/?$/;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
// Errors after which reconnecting on our own would just fail again.
const FATAL_CODES = new Set(['bad_password', 'invalid_room', 'invalid_client', 'room_full', 'forbidden']);
const PASSWORD_CODES = new Set(['bad_password', 'password_required', 'auth_required']);

// Test hook (tests/browser): body[data-state] is 'online' only once the socket
// is open, authenticated if needed, and the history has been rendered.
const setPageState = (state) => { document.body.dataset.state = state; };

function showError(text) {
  const el = $('error');
  el.textContent = text ?? '';
  el.hidden = !text;
}

// ------------------------------------------------------------------ /new_chat

function startNewChat() {
  $('new-view').hidden = false;
  setPageState('new');
  const enable = $('room-password-enable');
  const pw = $('room-password');
  enable.addEventListener('change', () => {
    pw.hidden = pw.disabled = !enable.checked;
    if (enable.checked) pw.focus();
  });
  $('create-room').focus();

  $('new-form').addEventListener('submit', async (ev) => {
    ev.preventDefault(); // never a real form submission (CSP form-action 'none')
    const password = enable.checked ? pw.value : '';
    if (enable.checked && !password) { pw.focus(); return; }
    $('create-room').disabled = true;

    const roomId = randomRoomId();
    const keyB64 = b64urlEncode(generateKeyBytes());
    if (password) {
      // The chosen password must survive the navigation below; it waits in the
      // room's record until the server confirms the room was created with it.
      await putRoom(roomId, {
        key: await importKey(keyB64), clientId: randomClientId(), inviteKey: keyB64, pendingPassword: password,
      });
    }
    location.assign(`/room/${roomId}#${keyB64}`);
  });
}

// ------------------------------------------------------------ /room/<roomId>

// First visit with "#key": import the key, remember it, then reload without the
// fragment so the secret leaves the address bar and the history entry.
//
// Trade-off on `inviteKey`: the CryptoKey is non-extractable, and the reload
// drops the only other copy, so the "Copy invite link" button could not work
// after this point without keeping the base64url key as well. We keep it in the
// same IndexedDB record (never in the URL, sessionStorage or on the server).
// That weakens non-extractability only against script already running in this
// origin (which CSP + Trusted Types are there to prevent, and which could use
// the CryptoKey to decrypt live anyway); on disk the browser stores the key
// bytes of the CryptoKey in the profile regardless. "Forget" deletes both.
async function importFromFragment(roomId, fragment) {
  history.replaceState(null, '', location.pathname + location.search); // drop the secret first, whatever happens
  let key;
  try {
    const bytes = b64urlDecode(fragment);
    if (bytes.length !== KEY_BYTES) throw new RangeError('wrong key length');
    key = await importKey(bytes);
  } catch {
    return false;
  }
  const prev = await getRoom(roomId).catch(() => undefined);
  const sameKey = prev?.inviteKey === fragment;
  await putRoom(roomId, {
    key,
    clientId: prev?.clientId ?? randomClientId(),
    inviteKey: fragment,
    // A password only belongs to the key it was set up with.
    ...(sameKey && prev.password ? { password: prev.password } : {}),
    ...(sameKey && prev.pendingPassword ? { pendingPassword: prev.pendingPassword } : {}),
  });
  // Reload rather than carry on: the fresh page starts from IndexedDB like any
  // later visit, and the raw key string does not linger in this JS heap.
  location.replace(location.pathname + location.search);
  return true;
}

async function startRoom(roomId) {
  $('room-view').hidden = false;
  $('room-id').textContent = roomId.length > 12 ? `${roomId.slice(0, 10)}…` : roomId;
  $('room-id').title = roomId;

  let record;
  try {
    const fragment = location.hash.slice(1);
    if (fragment) {
      if (await importFromFragment(roomId, fragment)) return; // page reloads
      return showNoKey('This invite link is damaged: its key is not valid. Ask for the full link again.');
    }
    record = await getRoom(roomId);
  } catch (err) {
    setPageState('error');
    showError(`Cannot use local key storage (IndexedDB): ${err?.message ?? err}`);
    return;
  }
  if (!record?.key || !record.clientId) {
    return showNoKey('No key for this room in this browser: open the full invite link (the one with #…).');
  }
  new RoomClient(roomId, record).start();
}

function showNoKey(message) {
  setPageState('no-key');
  $('me-name').textContent = '—';
  $('status').dataset.state = 'offline';
  $('status').textContent = 'No key';
  setComposerEnabled(false);
  $('clear-history').disabled = true;
  $('forget-room').hidden = true; // nothing stored to forget
  showError(message);
}

function setComposerEnabled(on) {
  $('send').disabled = !on;
}

// ---------------------------------------------------------------- RoomClient

class RoomClient {
  constructor(roomId, record) {
    this.roomId = roomId;
    this.record = record;
    this.key = record.key;
    this.clientId = record.clientId;
    this.name = displayName(record.clientId);
    // Password handling (parley extension): `password` is one the server has
    // accepted before; `pendingPassword` is the creator's choice not yet confirmed.
    this.password = record.password ?? null;
    this.passwordVerified = Boolean(record.password);
    this.createPassword = record.pendingPassword ?? null;
    this.seenIds = new Set();  // duplicate / replay detection (history ∪ live)
    this.seenIvs = new Set();
    this.queue = Promise.resolve(); // frames are handled strictly in order
    this.ws = null;
    this.attempt = 0;
    this.reconnectTimer = 0;
    this.stopped = false;
    this.authPending = false;
    this.historyDone = false;
    this.online = false;
    this.decryptFailures = 0;
  }

  async start() {
    $('me-name').textContent = this.name;
    this.bindUi();
    this.setStatus('connecting', 'Connecting…');

    const info = await this.fetchInfo();
    if (info) this.setMembers(info.members);
    if (this.createPassword && info?.exists) {
      // Someone else created the room first: our password would not apply.
      this.createPassword = null;
      this.saveRecord({ pendingPassword: undefined });
    }
    if (info?.passwordRequired && !this.password) {
      this.askPassword();
      return;
    }
    this.connect();
  }

  async fetchInfo() {
    try {
      const res = await fetch(`/api/room/${encodeURIComponent(this.roomId)}/info`, {
        cache: 'no-store', credentials: 'omit',
      });
      if (!res.ok) return null;
      const j = await res.json();
      return {
        exists: j.exists === true,
        members: Number.isInteger(j.members) ? j.members : null,
        passwordRequired: j.passwordRequired === true,
      };
    } catch {
      return null; // server without the extension: connect and let it decide
    }
  }

  // ---- UI wiring

  bindUi() {
    const composer = $('composer');
    composer.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.send();
      }
    });
    composer.addEventListener('input', () => autoGrow(composer));
    $('send').addEventListener('click', () => this.send());

    $('clear-history').addEventListener('click', () => {
      if (!this.online) return;
      if (!confirm('Clear the stored history of this room for everyone?')) return;
      this.ws.send(JSON.stringify({ type: 'clear_history' }));
      this.onCleared('You cleared the history'); // do not rely on the server echoing it to us
    });

    $('forget-room').addEventListener('click', async () => {
      if (!confirm('Remove this room\'s key from this browser? You will need the invite link to come back.')) return;
      this.stop();
      await deleteRoom(this.roomId);
      location.replace('/new_chat');
    });

    if (this.record.inviteKey) {
      const link = `${location.origin}/room/${this.roomId}#${this.record.inviteKey}`;
      $('invite').hidden = false;
      $('invite-link').value = link;
      $('invite-link').addEventListener('focus', (ev) => ev.target.select());
      $('copy-invite').addEventListener('click', () => copyText(link, $('copy-invite')));
    }

    const dialog = $('password-dialog');
    // Escape would leave the page stuck with no way to enter the password.
    dialog.addEventListener('cancel', (ev) => ev.preventDefault());
    $('password-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const value = $('password').value;
      if (!value) return;
      dialog.close();
      this.password = value;
      this.passwordVerified = false;
      showError('');
      this.attempt = 0;
      this.connect();
    });
    // Back online: skip the rest of the back-off wait.
    window.addEventListener('online', () => {
      if (!this.ws && this.reconnectTimer && document.body.dataset.state === 'offline') this.connect();
    });
    $('status').addEventListener('click', () => {
      if (document.body.dataset.state === 'password') this.askPassword();
    });
  }

  askPassword(message) {
    this.setStatus('offline', 'Password required');
    setPageState('password');
    const err = $('password-error');
    err.textContent = message ?? '';
    err.hidden = !message;
    const dialog = $('password-dialog');
    $('password').value = '';
    if (!dialog.open) dialog.showModal();
    $('password').focus();
  }

  setStatus(state, text) {
    const el = $('status');
    el.dataset.state = state;
    el.textContent = text;
    this.online = state === 'online';
    setComposerEnabled(this.online);
    $('clear-history').disabled = !this.online;
    if (state !== 'online') setPageState(state);
  }

  setMembers(n) {
    if (!Number.isInteger(n) || n < 0) return;
    const el = $('members');
    el.dataset.count = String(n);
    el.textContent = `${n} online`;
  }

  // ---- connection

  connect() {
    clearTimeout(this.reconnectTimer);
    if (this.stopped) return;
    this.historyDone = false;
    if (this.ws) { const old = this.ws; this.ws = null; old.close(1000); }
    this.setStatus('connecting', this.attempt ? 'Reconnecting…' : 'Connecting…');

    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const url = `${scheme}://${location.host}/ws/${encodeURIComponent(this.roomId)}?client=${encodeURIComponent(this.clientId)}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    let fatal = false;

    ws.addEventListener('open', () => {
      const password = this.createPassword ?? this.password;
      this.authPending = Boolean(password);
      if (password) {
        // Must be the first frame. `create` asks the server to set this password
        // if the room does not exist yet; we only send it with a password known
        // to be the room's (ours as creator, or one accepted before), so a room
        // lost on a server restart comes back protected, never with a typo.
        const auth = { type: 'auth', password };
        if (this.createPassword || this.passwordVerified) auth.create = true;
        ws.send(JSON.stringify(auth));
      }
    });

    ws.addEventListener('message', (ev) => {
      if (typeof ev.data !== 'string') return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (!frame || typeof frame !== 'object') return;
      if (frame.type === 'error' && FATAL_CODES.has(frame.code)) fatal = true;
      this.queue = this.queue.then(() => this.handle(frame)).catch((err) => console.warn('frame handling failed', err));
    });

    ws.addEventListener('close', () => {
      if (this.ws !== ws) return;
      this.ws = null;
      // Let queued frames (e.g. the error that preceded the close) land first.
      this.queue = this.queue.then(() => {
        if (this.stopped || fatal || document.body.dataset.state === 'password') return;
        this.scheduleReconnect();
      });
    });
  }

  scheduleReconnect() {
    // Exponential back-off with "equal jitter": half fixed, half random, so a
    // restarted server is not hit by every client at the same instant.
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
    this.attempt = Math.min(this.attempt + 1, 16);
    this.setStatus('offline', `Offline · retrying in ${Math.ceil(delay / 1000)}s`);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.ws?.close(1000);
  }

  maybeOnline() {
    if (!this.historyDone || this.authPending || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.attempt = 0;
    this.setStatus('online', 'Online');
    setPageState('online');
  }

  // ---- inbound frames

  async handle(frame) {
    switch (frame.type) {
      case 'history': {
        const list = Array.isArray(frame.messages) ? frame.messages : [];
        for (const env of list) await this.receive(env, true);
        this.historyDone = true;
        this.maybeOnline();
        break;
      }
      case 'message':
        await this.receive(frame, false);
        break;
      case 'auth_ok':
        this.authPending = false;
        this.passwordVerified = true;
        if (this.createPassword) {
          this.password = this.createPassword;
          this.createPassword = null;
        }
        this.saveRecord({ password: this.password, pendingPassword: undefined });
        this.maybeOnline();
        break;
      case 'system':
        this.onSystem(frame);
        break;
      case 'history_cleared':
        this.onCleared(`History cleared by ${this.nameOf(frame.by)}`);
        break;
      case 'error':
        this.onError(frame);
        break;
      default:
        break; // unknown types are ignored so the server can evolve
    }
  }

  onSystem(frame) {
    if (Number.isInteger(frame.members)) this.setMembers(frame.members);
    const who = typeof frame.clientId === 'string' ? frame.clientId : '';
    let text = typeof frame.text === 'string' ? frame.text : '';
    switch (frame.event) {
      case 'joined':
        if (who === this.clientId) return;
        text ||= `${this.nameOf(who)} joined`;
        break;
      case 'left':
        if (who === this.clientId) return;
        text ||= `${this.nameOf(who)} left`;
        break;
      case 'history_cleared':
        this.onCleared(text || `History cleared by ${this.nameOf(who)}`);
        return;
      case 'connected':
        return; // the status pill already says so
      default:
        break;
    }
    if (text) this.addSystemLine(text);
  }

  onError(frame) {
    const code = typeof frame.code === 'string' ? frame.code : 'error';
    const message = typeof frame.message === 'string' ? frame.message : '';
    if (PASSWORD_CODES.has(code)) {
      const wrong = code === 'bad_password';
      if (this.createPassword) this.saveRecord({ pendingPassword: undefined });
      this.createPassword = null;
      this.password = null;
      this.authPending = false;
      if (wrong) this.saveRecord({ password: undefined });
      showError(wrong ? 'Wrong room password.' : 'This room requires a password.');
      this.ws?.close(1000);
      this.askPassword(wrong ? 'That password was not accepted. Try again.' : undefined);
      return;
    }
    showError(message ? `Server: ${message} (${code})` : `Server error: ${code}`);
    if (FATAL_CODES.has(code)) {
      this.setStatus('offline', 'Disconnected');
      setPageState('error');
    }
  }

  async receive(env, fromHistory) {
    if (!env || typeof env.iv !== 'string' || typeof env.ciphertext !== 'string') return;
    if (this.seenIvs.has(env.iv)) return; // replayed or overlapping history/live frame
    let msg;
    try {
      msg = await openMessage(this.key, env);
    } catch {
      this.decryptFailures++;
      if (this.decryptFailures === 1 || !fromHistory) {
        this.addSystemLine('A message could not be decrypted (different key or tampered with).', 'warn');
      }
      return;
    }
    if (this.seenIds.has(msg.id)) return;
    this.seenIvs.add(env.iv);
    this.seenIds.add(msg.id);
    const from = typeof env.from === 'string' ? env.from : '';
    this.renderMessage({ ...msg, from, own: from === this.clientId });
  }

  // ---- outbound

  async send() {
    const composer = $('composer');
    const text = composer.value.replace(/\s+$/, '');
    if (!text.trim() || !this.online || this.sending) return;
    if (text.length > MAX_TEXT) {
      showError(`Messages are limited to ${MAX_TEXT} characters.`);
      return;
    }
    // Encryption is async: without this guard a fast double Enter sends twice.
    this.sending = true;
    let sealed;
    try {
      sealed = await sealMessage(this.key, { text, name: this.name });
    } finally {
      this.sending = false;
    }
    const { iv, ciphertext, msg } = sealed;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return; // keep the draft
    this.ws.send(JSON.stringify({ type: 'message', iv, ciphertext }));
    this.seenIvs.add(iv);
    this.seenIds.add(msg.id);
    composer.value = '';
    autoGrow(composer);
    showError('');
    this.renderMessage({ ...msg, from: this.clientId, own: true });
  }

  // ---- rendering

  nameOf(clientId) {
    if (!clientId) return 'someone';
    return clientId === this.clientId ? 'you' : displayName(clientId);
  }

  renderMessage({ text, name, ts, id, from, own }) {
    const list = $('messages');
    const stick = own || list.scrollHeight - list.scrollTop - list.clientHeight < 80;

    const li = document.createElement('li');
    li.className = own ? 'msg own' : 'msg';
    li.dataset.from = from;
    li.dataset.id = id;

    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('span');
    who.className = `name hue-${hueIndex(from || name)}`;
    // The name inside the ciphertext is chosen by the sender; flag it when it is
    // not the one derived from the relay-reported clientId.
    const expected = from ? displayName(from) : '';
    who.textContent = own ? 'You' : (name || expected || 'Unknown');
    if (!own && expected && name && name !== expected) {
      who.title = `Sender id ${from} is normally shown as "${expected}"`;
      who.classList.add('mismatch');
    }
    const time = document.createElement('time');
    const date = new Date(ts);
    time.dateTime = date.toISOString();
    time.textContent = formatTime(date);
    time.title = date.toLocaleString();
    meta.append(who, time);

    const body = document.createElement('div');
    body.className = 'text';
    body.textContent = text;

    li.append(meta, body);
    list.append(li);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  addSystemLine(text, kind = 'info') {
    const li = document.createElement('li');
    li.className = `sys ${kind}`;
    li.textContent = text;
    const list = $('messages');
    list.append(li);
    list.scrollTop = list.scrollHeight;
  }

  clearMessages() {
    $('messages').replaceChildren();
    this.clearedAt = Date.now();
  }

  // Servers may announce a clear twice (history_cleared and a system event),
  // and the clearer has already emptied its list: one notice is enough.
  onCleared(text) {
    if (Date.now() - (this.clearedAt ?? 0) < 2000 && $('messages').querySelector('.sys.cleared')) return;
    this.clearMessages();
    this.addSystemLine(text, 'cleared');
  }

  saveRecord(patch) {
    this.record = { ...this.record, ...patch };
    for (const [k, v] of Object.entries(this.record)) if (v === undefined || v === null) delete this.record[k];
    putRoom(this.roomId, this.record).catch((err) => console.warn('saving room record failed', err));
  }
}

// ------------------------------------------------------------------- helpers

function formatTime(date) {
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function autoGrow(textarea) {
  // CSSOM writes are allowed under style-src 'self' (only inline markup is not).
  textarea.style.height = 'auto';
  textarea.style.height = `${Math.min(textarea.scrollHeight, 200)}px`;
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Clipboard API may be denied (permissions, insecure context): fall back to
    // selecting the field so the user can copy by hand.
    $('invite-link').select();
    button.textContent = 'Press Ctrl+C';
    setTimeout(() => { button.textContent = 'Copy'; }, 2000);
    return;
  }
  button.textContent = 'Copied';
  setTimeout(() => { button.textContent = 'Copy'; }, 1500);
}

// --------------------------------------------------------------------- main

function main() {
  const path = location.pathname;
  if (path === '/new_chat' || path === '/new_chat/') return startNewChat();
  const m = ROOM_PATH_RE.exec(path);
  if (m) return startRoom(m[1]);
  $('room-view').hidden = false;
  setPageState('error');
  showError('Unknown page. Open /new_chat to start a room.');
}

main();
