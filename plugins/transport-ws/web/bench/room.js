// parley bench client: one bench (room), BenchTalks' wire format and crypto, parley's own code.
//
// Runs under a strict CSP with Trusted Types enforced: the DOM is built only with
// createElement/textContent, never innerHTML or inline handlers or styles.
//
// Test hooks (tests/browser/bench-web.test.mjs): body[data-state] is 'join' (name card),
// 'connecting', 'online' (welcome received), 'offline' (retrying), 'invite' (redeeming a
// one-time invite), or an end state: 'deleted', 'kicked', 'banned', 'invite-invalid', 'error'.
// body.is-admin is set while this browser holds the bench's admin token.

import {
  adminHash, BENCH_ID_RE, inviteUrl, newAdminToken, newKey, openBytes, openChat,
  openInvite, pairingUrl, parseRoomLocation, roomUrl, sealBytes, sealChat, sealInvite, sniffImageType,
} from '/crypto.js';

const $ = (id) => document.getElementById(id);
const DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024; // BenchTalks' MAX_FILE_SIZE default; the server's error teaches us its own
const MAX_TEXT_PAYLOAD = 256 * 1024;             // parley's bench.max_text default
const NAME_STORAGE_KEY = 'parley.bench.name';
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;

const setPageState = (state) => { document.body.dataset.state = state; };

function showView(which) {
  for (const v of ['join', 'ended', 'room']) $(`${v}-view`).hidden = v !== which;
}

// An end state: the room is gone for this page (deleted, banned, bad link…).
function showEnded(state, title, text, { home = true } = {}) {
  showView('ended');
  $('ended-title').textContent = title;
  $('ended-text').textContent = text;
  $('ended-home').hidden = !home;
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  setPageState(state);
}

let errorTimer = 0;
function showError(text) {
  const el = $('error');
  clearTimeout(errorTimer);
  el.textContent = text ?? '';
  el.hidden = !text;
  if (text) errorTimer = setTimeout(() => { el.hidden = true; }, 12_000);
}

function storedName() {
  try {
    return localStorage.getItem(NAME_STORAGE_KEY) ?? '';
  } catch {
    return '';
  }
}

function storeName(name) {
  try {
    localStorage.setItem(NAME_STORAGE_KEY, name);
  } catch { /* storage disabled: ask again next time */ }
}

// ------------------------------------------------------------ one-time invite

// #invite=<token>&ik=<key>: fetch the sealed payload once, open it here, go to the room.
async function redeemInvite({ token, key }) {
  setPageState('invite');
  showEnded('invite', 'Opening your invite…', 'Fetching the sealed bench key from the server.', { home: false });
  // Single use: whatever happens next, the link should not stay in the address bar or history.
  history.replaceState(null, '', location.pathname);
  let res;
  try {
    res = await fetch(`/join/${encodeURIComponent(token)}`, { cache: 'no-store', credentials: 'omit' });
  } catch {
    return showEnded('error', 'The server cannot be reached', 'Check your connection and open the invite link again.');
  }
  if (!res.ok) {
    return showEnded('invite-invalid', 'This invite does not work',
      'The invite link is invalid, has expired or has already been used. Ask for a new one.');
  }
  let body = null;
  try {
    body = await res.json();
  } catch { /* handled below */ }
  const opened = body && typeof body.encryptedPayload === 'string'
    ? openInvite(body.encryptedPayload, key, typeof body.roomId === 'string' ? body.roomId : null)
    : null;
  if (!opened) {
    return showEnded('error', 'This invite cannot be opened', 'The invite could not be decrypted: the link may be incomplete. Ask for a new one.');
  }
  location.replace(roomUrl(location.origin, opened.roomId, opened.key));
}

// ------------------------------------------------------------------- joining

function askName(loc) {
  showView('join');
  setPageState('join');
  const input = $('name-input');
  input.value = storedName();
  if (loc.pairToken) $('join-lead').textContent = 'Pairing link: join this bench to hand the pairing token to your server.';
  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault(); // never a real form submission (CSP form-action 'none')
    const name = input.value.replace(/\s+/g, ' ').trim().slice(0, 40) || 'Anonymous';
    storeName(name === 'Anonymous' ? '' : name);
    $('join-button').disabled = true;
    new Bench(loc, name).start();
  }, { once: true });
  input.focus();
}

// ---------------------------------------------------------------------- Bench

class Bench {
  constructor(loc, name) {
    this.roomId = loc.roomId;
    this.key = loc.key;
    this.name = name;
    // BenchTalks' admin: the token stays in this browser (#admin=…); the join presents its
    // SHA-256 and the server makes that the room's admin hash if the join creates the room.
    // Without a token in the link we present a fresh one anyway: if our join turns out to
    // create the (empty, vanished) room, we are its first joiner and so its admin.
    this.adminToken = loc.adminToken;
    this.joinToken = loc.adminToken ?? newAdminToken();
    this.joinHash = null;
    this.pair = loc.pairToken ? { token: loc.pairToken, claimer: loc.claimer } : null;
    this.selfId = null;
    this.members = 0;
    this.names = new Map();       // senderId -> last name seen in its (decrypted) messages
    this.banning = new Set();     // senderIds we asked the server to ban
    this.maxFileSize = DEFAULT_MAX_FILE_SIZE;
    this.lastImage = null;        // our last image, until the server objects to it (or not)
    this.ws = null;
    this.online = false;
    this.joinedOnce = false;
    this.ended = false;
    this.attempt = 0;
    this.reconnectTimer = 0;
    this.lastError = '';
    this.confirmAction = null;
  }

  async start() {
    showView('room');
    $('room-id').textContent = this.roomId.length > 10 ? `${this.roomId.slice(0, 8)}…` : this.roomId;
    $('room-id').title = this.roomId;
    $('me-name').textContent = this.name;
    document.title = `parley bench · ${this.roomId.slice(0, 8)}`;
    this.bindUi();
    this.setAdmin(false);
    try {
      this.joinHash = await adminHash(this.joinToken);
    } catch (err) {
      return showEnded('error', 'This browser cannot join', `Hashing the admin token failed: ${err?.message ?? err}`);
    }
    this.connect();
  }

  // ---- connection

  connect() {
    clearTimeout(this.reconnectTimer);
    if (this.ended) return;
    this.setStatus('connecting', this.attempt ? 'Reconnecting…' : 'Connecting…');
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    ws.addEventListener('open', () => {
      // BenchTalks' join; the payload (its display name, in clear) is left empty: names travel
      // only inside encrypted messages.
      ws.send(JSON.stringify({ type: 'join', roomId: this.roomId, adminHash: this.joinHash, payload: '' }));
    });
    ws.addEventListener('message', (ev) => {
      if (this.ws !== ws || typeof ev.data !== 'string') return;
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!frame || typeof frame !== 'object' || typeof frame.type !== 'string') return;
      try {
        this.handle(frame);
      } catch (err) {
        console.warn('bench: frame handling failed', err);
      }
    });
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.online = false;
      this.setComposer(false);
      if (this.ended) return;
      if (ev.code === 1008) {
        // Policy close (room full, creation limit, too many bad frames): retrying would not help.
        return showEnded('error', 'Disconnected by the server', this.lastError || ev.reason || 'The server closed the connection.');
      }
      if (this.joinedOnce) this.addSystemLine('Connection lost.', 'warn');
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    // Exponential back-off with equal jitter, so a restarted server is not hit all at once.
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
    this.attempt = Math.min(this.attempt + 1, 16);
    this.setStatus('offline', `Offline · retrying in ${Math.ceil(delay / 1000)}s`);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  end(state, title, text) {
    this.ended = true;
    this.online = false;
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000);
    showEnded(state, title, text);
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      showError('Not connected: wait until the bench is back online.');
      return false;
    }
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // ---- inbound frames: {"type","payload","senderId"}

  handle(frame) {
    const payload = typeof frame.payload === 'string' ? frame.payload : '';
    const sender = typeof frame.senderId === 'string' ? frame.senderId : '';
    switch (frame.type) {
      case 'welcome': return this.onWelcome(payload, sender);
      case 'join':
        if (!this.online) return;
        this.setMembers(this.members + 1);
        this.addSystemLine('Someone joined the bench');
        return;
      case 'leave': {
        if (!this.online) return;
        this.setMembers(Math.max(1, this.members - 1));
        const who = this.nameOf(sender);
        this.addSystemLine(this.banning.delete(sender) ? `${who} was banned from the bench` : `${who} left the bench`);
        // Gone: nothing left to ban (a new connection gets a new id).
        for (const li of document.querySelectorAll('#messages .msg')) {
          if (li.dataset.senderId === sender) li.querySelector('.ban-btn')?.remove();
        }
        return;
      }
      case 'message': return this.onMessage(payload, sender);
      case 'image': return this.onImage(payload, sender);
      case 'deleted':
        return this.end('deleted', 'This bench was deleted', 'Its admin deleted the bench: everyone was sent home and nothing of it is left.');
      case 'kicked':
        return this.end('kicked', 'You were removed from this bench', 'The admin banned you from this bench.');
      case 'banned':
        return this.end('banned', 'You are banned from this bench', 'The admin of this bench banned you; you cannot rejoin it.');
      case 'made_public':
        $('public-badge').hidden = false;
        $('make-public').hidden = true;
        this.addSystemLine('This bench is now public: its (encrypted) messages may travel to paired benches.');
        return;
      case 'pair_token': return this.onPairToken(payload);
      case 'pair_claim_sent':
        this.addSystemLine('Pairing request sent, waiting for the other bench…');
        return;
      case 'pair_approved':
        this.addSystemLine(`Pairing approved: this bench is now federated with ${payload || 'the other bench'}.`);
        return;
      case 'pair_rejected':
        this.addSystemLine('Pairing rejected: the token may be expired, used or for another bench.', 'warn');
        return;
      case 'error': return this.onServerError(payload);
      default:
        return; // unknown types are ignored so the server can evolve
    }
  }

  onWelcome(payload, selfId) {
    const n = Number.parseInt(payload, 10);
    this.selfId = selfId || null;
    this.setMembers(Number.isInteger(n) && n > 0 ? n : 1);
    if (!this.adminToken && n === 1) {
      // Our join made the room: the hash it carried is the room's admin hash now.
      this.adminToken = this.joinToken;
      history.replaceState(null, '', roomUrl(location.origin, this.roomId, this.key, this.adminToken));
      this.addSystemLine('You are the first one here: you are this bench\'s admin.');
    }
    this.setAdmin(Boolean(this.adminToken));
    this.online = true;
    this.attempt = 0;
    this.setStatus('online', 'Online');
    this.setComposer(true);
    this.addSystemLine(this.joinedOnce ? 'Reconnected to the bench' : 'You joined the bench');
    this.joinedOnce = true;
    setPageState('online');
    if (this.pair) {
      // BenchTalks: claim right after our seat is confirmed, then drop the one-time token
      // from the address bar (the key and admin token stay in the fragment).
      this.send({ type: 'claim_pair', roomId: this.roomId, payload: this.pair.token });
      this.pair = null;
      history.replaceState(null, '', `${location.pathname}?room=${encodeURIComponent(this.roomId)}${location.hash}`);
    }
    if (document.activeElement === document.body || !document.activeElement) $('composer').focus();
  }

  onMessage(payload, senderId) {
    const m = openChat(payload, this.key);
    if (!m) {
      this.addSystemLine('A message could not be decrypted (another key, or tampered with).', 'warn');
      return;
    }
    if (senderId) this.names.set(senderId, m.sender);
    this.renderText({ name: m.sender, text: m.text, ts: m.timestamp, senderId, own: false });
  }

  onImage(payload, senderId) {
    const bytes = openBytes(payload, this.key);
    if (!bytes) {
      this.addSystemLine('An image could not be decrypted (another key, or tampered with).', 'warn');
      return;
    }
    const type = sniffImageType(bytes);
    if (!type) {
      this.addSystemLine(`${this.nameOf(senderId)} sent a file that is not a supported image; it is not shown.`, 'warn');
      return;
    }
    const url = URL.createObjectURL(new Blob([bytes], { type }));
    this.renderImage({ url, size: bytes.length, senderId, own: false });
  }

  onPairToken(payload) {
    const bar = payload.indexOf('|');
    const token = bar > 0 ? payload.slice(0, bar) : '';
    const claimer = bar > 0 ? payload.slice(bar + 1) : '';
    if (!token || !BENCH_ID_RE.test(claimer)) {
      showError('The server sent a malformed pairing token.');
      return;
    }
    const url = pairingUrl(location.origin, this.roomId, token, claimer, location.hash);
    this.showLink('Pairing link', `Give this link to the operator of bench “${claimer}”, out of band (not through a bench).`, url,
      'It carries this bench\'s key and your admin token. It works once, only on that bench, and expires in 5 minutes.');
    this.addSystemLine('Pairing link generated: valid for 5 minutes, single use.');
  }

  onServerError(text) {
    const msg = text.slice(0, 300) || 'unknown error';
    this.lastError = msg;
    if (/^invalid admin token/.test(msg) && this.adminToken) {
      // e.g. a server that keeps an emptied room's admin (admin_claim: sticky), or a room that
      // was recreated by someone else: this browser is not the admin, stop pretending.
      this.adminToken = null;
      this.setAdmin(false);
      history.replaceState(null, '', roomUrl(location.origin, this.roomId, this.key));
      showError('The server did not accept this browser as the bench\'s admin (invalid admin token). Admin actions are off.');
      return;
    }
    if (/^(image too large|too many images)/.test(msg)) {
      const limit = /limit is (\d+) bytes/.exec(msg);
      if (limit) this.maxFileSize = Number(limit[1]);
      if (this.lastImage) {
        this.lastImage.classList.add('failed');
        const note = document.createElement('div');
        note.className = 'fail-note';
        note.textContent = `Not delivered: ${msg}`;
        this.lastImage.append(note);
        this.lastImage = null;
      }
    }
    showError(`Server: ${msg}`);
  }

  // ---- outbound

  sendText() {
    const composer = $('composer');
    const text = composer.value.replace(/\s+$/, '');
    if (!text.trim() || !this.online) return;
    const timestamp = Date.now();
    const payload = sealChat({ sender: this.name, text, timestamp }, this.key);
    if (payload.length > MAX_TEXT_PAYLOAD) {
      showError('This message is too long for a bench: split it up.');
      return;
    }
    if (!this.send({ type: 'message', roomId: this.roomId, payload })) return;
    composer.value = '';
    autoGrow(composer);
    this.renderText({ name: this.name, text, ts: timestamp, senderId: this.selfId, own: true });
  }

  async sendImage(file) {
    if (!this.online) return;
    if (!file.type.startsWith('image/')) {
      showError('Only images can be sent on a bench.');
      return;
    }
    if (file.size > this.maxFileSize) {
      showError(`Image too large: ${formatSize(file.size)}; the limit on this bench is ${formatSize(this.maxFileSize)}.`);
      return;
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    const type = sniffImageType(bytes);
    if (!type) {
      showError('Others could not view this file: send a PNG, JPEG, GIF, WebP, AVIF or BMP image.');
      return;
    }
    const payload = sealBytes(bytes, this.key);
    if (!this.send({ type: 'image', roomId: this.roomId, payload })) return;
    const url = URL.createObjectURL(new Blob([bytes], { type }));
    this.lastImage = this.renderImage({ url, size: bytes.length, senderId: this.selfId, own: true, fileName: file.name });
  }

  async createInvite() {
    // The room key sealed with a key made here for this one link; the server stores the
    // sealed payload and hands it out once, but the key to open it never reaches it.
    const inviteKey = newKey();
    const encryptedPayload = sealInvite(this.roomId, this.key, inviteKey);
    let res;
    let body = null;
    try {
      res = await fetch('/api/invite', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ roomId: this.roomId, encryptedPayload }),
        cache: 'no-store',
        credentials: 'omit',
      });
      body = res.ok ? await res.json() : (await res.text()).trim();
    } catch {
      showError('Could not reach the server to create the invite.');
      return;
    }
    if (!res.ok || typeof body?.token !== 'string') {
      showError(`The server refused the invite: ${typeof body === 'string' && body ? body : `HTTP ${res.status}`}`);
      return;
    }
    this.showLink('One-time invite link', 'Works once, for one person. It opens this bench without showing its key in the link.',
      inviteUrl(location.origin, body.token, inviteKey),
      'Invites expire after a while (a day by default). The server keeps only a sealed copy of the key, which it cannot open.');
  }

  // ---- admin

  setAdmin(on) {
    $('admin').hidden = !on;
    $('admin-badge').hidden = !on;
    document.body.classList.toggle('is-admin', on);
    if (!on) this.closeMenu();
  }

  adminFrame(type, extra = {}) {
    if (!this.adminToken) return;
    this.send({ type, roomId: this.roomId, payload: this.adminToken, ...extra });
  }

  ban(senderId) {
    const who = this.nameOf(senderId);
    this.confirm(`Ban ${who}?`, `${who} is removed now and cannot rejoin this bench from the same address.`, 'Ban', () => {
      if (!this.adminToken) return;
      this.banning.add(senderId);
      // BenchTalks' ban_client carries just the target; parley also takes the token as proof.
      this.send({ type: 'ban_client', roomId: this.roomId, payload: senderId, adminToken: this.adminToken });
    });
  }

  // ---- UI

  bindUi() {
    const composer = $('composer');
    composer.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        this.sendText();
      }
    });
    composer.addEventListener('input', () => autoGrow(composer));
    composer.addEventListener('paste', (ev) => {
      const file = [...(ev.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
      if (file) {
        ev.preventDefault();
        this.sendImage(file);
      }
    });
    $('send').addEventListener('click', () => this.sendText());
    $('attach').addEventListener('click', () => $('image-input').click());
    $('image-input').addEventListener('change', (ev) => {
      const file = ev.target.files?.[0];
      ev.target.value = '';
      if (file) this.sendImage(file);
    });
    const view = $('room-view');
    view.addEventListener('dragover', (ev) => {
      if ([...(ev.dataTransfer?.items ?? [])].some((i) => i.kind === 'file')) ev.preventDefault();
    });
    view.addEventListener('drop', (ev) => {
      const file = [...(ev.dataTransfer?.files ?? [])][0];
      if (!file) return;
      ev.preventDefault();
      this.sendImage(file);
    });

    $('share-button').addEventListener('click', () => {
      this.showLink('Share this bench', 'Anyone with this link can read and write here while the bench exists.',
        roomUrl(location.origin, this.roomId, this.key),
        'The key is the part after “#”, which browsers never send to the server.');
    });

    // Admin menu
    const menuButton = $('admin-menu-button');
    menuButton.addEventListener('click', (ev) => {
      ev.stopPropagation();
      if ($('admin-menu').hidden) this.openMenu();
      else this.closeMenu();
    });
    document.addEventListener('click', (ev) => {
      if (!$('admin').contains(ev.target)) this.closeMenu();
    });
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') this.closeMenu();
    });
    $('invite-once').addEventListener('click', () => {
      this.closeMenu();
      this.createInvite();
    });
    $('pair-bench').addEventListener('click', () => {
      this.closeMenu();
      $('pair-error').hidden = true;
      $('claimer-input').value = '';
      $('pair-dialog').showModal();
      $('claimer-input').focus();
    });
    $('make-public').addEventListener('click', () => {
      this.closeMenu();
      this.confirm('Make this bench public?', 'Its encrypted messages may then travel to paired benches. This cannot be undone.', 'Make public',
        () => this.adminFrame('make_public'));
    });
    $('delete-bench').addEventListener('click', () => {
      this.closeMenu();
      this.confirm('Delete this bench?', 'Everyone is sent home at once and the bench is gone.', 'Delete',
        () => this.adminFrame('delete'));
    });

    // Pairing dialog
    $('pair-cancel').addEventListener('click', () => $('pair-dialog').close());
    $('pair-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const claimer = $('claimer-input').value.trim();
      if (!BENCH_ID_RE.test(claimer)) {
        $('pair-error').textContent = 'A Bench ID is 1 to 64 letters, digits, dots, dashes or underscores.';
        $('pair-error').hidden = false;
        return;
      }
      $('pair-dialog').close();
      // BenchTalks reuses adminHash for the claiming bench's id here.
      this.adminFrame('request_pair', { adminHash: claimer });
    });

    // Link dialog
    $('link-close').addEventListener('click', () => $('link-dialog').close());
    $('link-field').addEventListener('focus', (ev) => ev.target.select());
    $('link-copy').addEventListener('click', () => copyText($('link-field').value, $('link-copy'), $('link-field')));

    // Confirm dialog
    $('confirm-cancel').addEventListener('click', () => $('confirm-dialog').close());
    $('confirm-ok').addEventListener('click', () => {
      const action = this.confirmAction;
      this.confirmAction = null;
      $('confirm-dialog').close();
      action?.();
    });
    $('confirm-dialog').addEventListener('close', () => { this.confirmAction = null; });

    // Image viewer
    $('image-dialog').addEventListener('click', () => $('image-dialog').close());

    // Back online: skip the rest of the back-off wait.
    window.addEventListener('online', () => {
      if (!this.ws && !this.ended && this.reconnectTimer) this.connect();
    });
  }

  openMenu() {
    $('admin-menu').hidden = false;
    $('admin-menu-button').setAttribute('aria-expanded', 'true');
  }

  closeMenu() {
    $('admin-menu').hidden = true;
    $('admin-menu-button').setAttribute('aria-expanded', 'false');
  }

  confirm(title, text, okLabel, action) {
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    $('confirm-dialog').showModal();
    this.confirmAction = action; // after showModal: a 'close' of a previous dialog resets it
    $('confirm-cancel').focus();
  }

  showLink(title, text, link, note = '') {
    $('link-title').textContent = title;
    $('link-text').textContent = text;
    $('link-field').value = link;
    $('link-note').textContent = note;
    $('link-note').hidden = !note;
    $('link-copy').textContent = 'Copy';
    if (!$('link-dialog').open) $('link-dialog').showModal();
    $('link-field').focus();
  }

  setStatus(state, text) {
    const el = $('status');
    el.dataset.state = state;
    el.textContent = text;
    if (state !== 'online') setPageState(state);
  }

  setComposer(on) {
    $('send').disabled = !on;
    $('attach').disabled = !on;
  }

  setMembers(n) {
    this.members = n;
    const el = $('member-count');
    el.dataset.count = String(n);
    el.textContent = n === 1 ? '1 here' : `${n} here`;
  }

  nameOf(senderId) {
    if (senderId && senderId === this.selfId) return 'You';
    return (senderId && this.names.get(senderId)) || 'Someone';
  }

  // ---- rendering

  messageShell({ name, ts, senderId, own }) {
    const list = $('messages');
    const stick = own || list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const li = document.createElement('li');
    li.className = own ? 'msg own' : 'msg';
    li.dataset.own = own ? '1' : '0';
    if (senderId) li.dataset.senderId = senderId;

    const meta = document.createElement('div');
    meta.className = 'meta';
    const who = document.createElement('span');
    who.className = `name hue-${hue(senderId || name)}`;
    who.textContent = own ? 'You' : name;
    if (!own && senderId) who.title = `Member ${senderId.slice(0, 8)} (names are chosen by each sender)`;
    const time = document.createElement('time');
    const date = new Date(Number.isFinite(ts) ? ts : Date.now());
    time.dateTime = date.toISOString();
    time.textContent = formatTime(date);
    time.title = date.toLocaleString();
    meta.append(who, time);
    if (!own && senderId && senderId !== this.selfId) {
      const ban = document.createElement('button');
      ban.type = 'button';
      ban.className = 'ban-btn';
      ban.textContent = 'Ban';
      ban.title = 'Ban this member from the bench';
      ban.dataset.testid = 'ban';
      ban.addEventListener('click', () => this.ban(senderId));
      meta.append(ban);
    }
    li.append(meta);
    return { li, list, stick };
  }

  renderText({ name, text, ts, senderId, own }) {
    const { li, list, stick } = this.messageShell({ name, ts, senderId, own });
    const body = document.createElement('div');
    body.className = 'text';
    body.textContent = text;
    li.append(body);
    list.append(li);
    if (stick) list.scrollTop = list.scrollHeight;
    return li;
  }

  renderImage({ url, size, senderId, own, fileName }) {
    const name = own ? 'You' : this.nameOf(senderId);
    const { li, list, stick } = this.messageShell({ name, ts: Date.now(), senderId, own });
    li.classList.add('image-msg');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'image-button';
    button.title = 'Show full size';
    const img = document.createElement('img');
    img.className = 'msg-image';
    img.alt = own && fileName ? fileName : `Image from ${name}`;
    img.dataset.testid = 'msg-image';
    img.src = url;
    img.addEventListener('load', () => { if (stick) list.scrollTop = list.scrollHeight; }, { once: true });
    button.append(img);
    button.addEventListener('click', () => {
      $('image-full').src = url;
      $('image-full').alt = img.alt;
      $('image-dialog').showModal();
    });
    const cap = document.createElement('div');
    cap.className = 'caption';
    cap.textContent = formatSize(size);
    li.append(button, cap);
    list.append(li);
    if (stick) list.scrollTop = list.scrollHeight;
    return li;
  }

  addSystemLine(text, kind = 'info') {
    const li = document.createElement('li');
    li.className = `sys ${kind}`;
    li.textContent = text;
    const list = $('messages');
    list.append(li);
    list.scrollTop = list.scrollHeight;
  }
}

// ------------------------------------------------------------------- helpers

function hue(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h % 12;
}

function formatTime(date) {
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function autoGrow(textarea) {
  // CSSOM writes are allowed under style-src 'self' (only inline markup is not).
  textarea.style.height = 'auto';
  if (textarea.value) textarea.style.height = `${Math.min(textarea.scrollHeight, 200)}px`;
}

async function copyText(text, button, field) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    field.select(); // clipboard denied: select it for Ctrl+C
    button.textContent = 'Press Ctrl+C';
  }
  setTimeout(() => { button.textContent = 'Copy'; }, 1800);
}

// --------------------------------------------------------------------- main

function main() {
  if (!globalThis.nacl?.secretbox) {
    return showEnded('error', 'This page did not load completely', 'The encryption library is missing: reload the page.');
  }
  const loc = parseRoomLocation(location);
  if (loc.invite) return redeemInvite(loc.invite);
  if (loc.problem) return showEnded('error', 'This link does not work', loc.problem);
  if (!loc.roomId || !loc.key) {
    return showEnded('error', 'This link does not work',
      'A bench link needs a room id and a key (the part after “#”). Ask for the full link again.');
  }
  if (loc.pairToken && !loc.adminToken) {
    return showEnded('error', 'This pairing link is incomplete', 'A pairing link carries the admin token: open the full link you were given.');
  }
  if (loc.pairToken && !BENCH_ID_RE.test(loc.claimer)) {
    return showEnded('error', 'This pairing link is damaged', 'Its bench id is not valid.');
  }
  askName(loc);
}

main();
