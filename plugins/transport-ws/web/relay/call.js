// Calls for the relay web client: WebRTC mesh over parley's signaling service (plugins/signaling)
// on the shared, authenticated relay socket. Events and payloads are Relay's (join_room, signal,
// call_state, members, peer_joined, peer_left, peer_call_state, room_join_error, last_to_leave)
// in parley's frame form {"type": event, "args": [...]}; TURN credentials come from the gateway
// (turn_credentials), so media can be forced through coturn (iceTransportPolicy "relay").
//
// Negotiation: the newcomer offers to every member already in the call (from `members`); members
// only answer, so two parley clients never both offer. An offer for an existing connection
// renegotiates it (camera, screen share); in glare the connection is rebuilt, as Relay does.
// Media never touches the gateway.

import { session } from './session.js';

const enc = new TextEncoder();

function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// Relay's getRoomIdForConversation: the room id is bound to its sorted member list, which the
// gateway re-derives before admitting anyone (no first-joiner claim).
export async function roomIdFor(keyHashes) {
  const sorted = [...keyHashes].sort();
  const digest = await crypto.subtle.digest('SHA-256', enc.encode(sorted.join(',')));
  return 'room-' + b64url(new Uint8Array(digest));
}

export class CallClient {
  // socket: { on(type, fn) -> off, send(obj) -> bool }; keyHash: own proven key hash.
  constructor({ socket, keyHash, iceTransportPolicy = 'all', onChange = () => {} }) {
    this.socket = socket;
    this.keyHash = keyHash;
    this.policy = iceTransportPolicy;
    this.onChange = onChange;
    this.room = null;
    this.allowed = [];
    this.local = null;
    this.camera = null; // camera track while on
    this.screen = null; // screen track while shared
    this.peers = new Map(); // id -> { pc, keyHash, stream, queue, state }
    this.muted = false;
    this.deafened = false;
    this.error = null;
    this.ice = null;
    this.waiters = new Map(); // event -> [resolve]
    this.offs = ['members', 'peer_joined', 'peer_left', 'signal', 'peer_call_state',
      'room_join_error', 'last_to_leave', 'turn_credentials', 'error']
      .map((t) => socket.on(t, (f) => this.onFrame(t, Array.isArray(f.args) ? f.args : [f])));
  }

  emit(event, ...args) { return this.socket.send({ type: event, args }); }

  next(event, ms = 10000) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
      const list = this.waiters.get(event) ?? [];
      list.push((v) => { clearTimeout(t); resolve(v); });
      this.waiters.set(event, list);
    });
  }

  async turn() {
    const p = this.next('turn_credentials');
    this.emit('turn_credentials');
    const c = await p;
    if (!c) throw new Error('TURN not configured');
    this.ice = [{ urls: c.urls, username: c.username, credential: c.credential }];
    return c;
  }

  async join(roomId, allowedKeyHashes, { video = false } = {}) {
    if (!this.ice) await this.turn().catch(() => { this.ice = []; });
    this.error = null;
    this.local = await navigator.mediaDevices.getUserMedia({ audio: true, video });
    this.camera = this.local.getVideoTracks()[0] ?? null;
    this.room = roomId;
    this.allowed = allowedKeyHashes;
    const answer = Promise.race([this.next('members'), this.next('room_join_error').then((e) => {
      throw new Error(e?.message ?? 'not allowed');
    })]);
    this.emit('join_room', roomId, this.keyHash, allowedKeyHashes);
    try {
      return await answer;
    } catch (e) {
      this.error = e.message;
      this.cleanup();
      throw e;
    }
  }

  async leave() {
    if (!this.room) return false;
    const room = this.room;
    const last = this.next('last_to_leave', 2000).then(() => true, () => false);
    this.emit('leave_room', room);
    this.cleanup();
    return last;
  }

  cleanup() {
    for (const p of this.peers.values()) p.pc.close();
    this.peers.clear();
    for (const t of this.local?.getTracks() ?? []) t.stop();
    this.screen?.stop();
    this.local = this.camera = this.screen = null;
    this.room = null;
    this.changed();
  }

  changed() { try { this.onChange(this); } catch (e) { console.error('call view', e); } }

  onFrame(type, args) {
    const a0 = args[0];
    switch (type) {
      case 'members':
        // We are the newcomer: offer to everyone already here.
        for (const m of a0 ?? []) this.offerTo(m.id, m.keyHash);
        break;
      case 'peer_joined':
        if (a0?.id) this.peer(a0.id, a0.keyHash);
        this.sendState();
        break;
      case 'peer_left': {
        const p = this.peers.get(a0);
        p?.pc.close();
        this.peers.delete(a0);
        break;
      }
      case 'signal':
        this.onSignal(a0).catch((e) => console.warn('signal', e.message));
        break;
      case 'peer_call_state': {
        const p = this.peers.get(a0?.id);
        if (p) p.state = a0;
        break;
      }
      case 'error':
        // A gateway without TURN answers turn_credentials with an error: do not wait for it.
        if (a0?.event === 'turn_credentials') for (const w of this.waiters.get('turn_credentials')?.splice(0) ?? []) w(null);
        break;
      case 'room_join_error':
        this.error = a0?.message ?? 'Not allowed to join this call.';
        break;
      default:
        break;
    }
    for (const w of this.waiters.get(type)?.splice(0) ?? []) w(a0);
    this.changed();
  }

  peer(id, keyHash) {
    let p = this.peers.get(id);
    if (p) return p;
    const pc = new RTCPeerConnection({ iceServers: this.ice ?? [], iceTransportPolicy: this.policy });
    p = { pc, keyHash, stream: new MediaStream(), queue: [], state: null, channel: null };
    this.peers.set(id, p);
    pc.onicecandidate = (e) => { if (e.candidate) this.emit('signal', { to: id, candidate: e.candidate.toJSON() }); };
    pc.ontrack = (e) => {
      p.stream.addTrack(e.track);
      e.track.onended = () => { p.stream.removeTrack(e.track); this.changed(); };
      this.applyDeafen();
      this.changed();
    };
    pc.ondatachannel = (e) => { p.channel = e.channel; };
    for (const t of this.local?.getTracks() ?? []) pc.addTrack(t, this.local);
    if (this.screen) pc.addTrack(this.screen, this.local);
    return p;
  }

  async offerTo(id, keyHash) {
    const p = this.peer(id, keyHash);
    if (!p.channel) p.channel = p.pc.createDataChannel('parley');
    await this.negotiate(id, p);
  }

  async negotiate(id, p) {
    const offer = await p.pc.createOffer();
    await p.pc.setLocalDescription(offer);
    this.emit('signal', { to: id, type: 'offer', sdp: p.pc.localDescription.toJSON() });
  }

  async onSignal(s) {
    const from = s?.from;
    if (!from || !this.room) return;
    let p = this.peers.get(from);
    if (s.sdp?.type === 'offer') {
      if (p && p.pc.signalingState !== 'stable') { // glare: rebuild as the answerer
        p.pc.close();
        this.peers.delete(from);
        p = null;
      }
      p = p ?? this.peer(from, null);
      await p.pc.setRemoteDescription(s.sdp);
      await this.drain(p);
      const answer = await p.pc.createAnswer();
      await p.pc.setLocalDescription(answer);
      this.emit('signal', { to: from, type: 'answer', sdp: p.pc.localDescription.toJSON() });
    } else if (s.sdp?.type === 'answer' && p?.pc.signalingState === 'have-local-offer') {
      await p.pc.setRemoteDescription(s.sdp);
      await this.drain(p);
    } else if (s.candidate && p) {
      if (p.pc.remoteDescription) await p.pc.addIceCandidate(s.candidate).catch(() => {});
      else p.queue.push(s.candidate);
    }
  }

  async drain(p) {
    for (const c of p.queue.splice(0)) await p.pc.addIceCandidate(c).catch(() => {});
  }

  sendState() {
    if (!this.room) return;
    this.emit('call_state', this.room, {
      muted: this.muted, deafened: this.deafened, cameraOn: !!this.camera?.enabled, screenSharing: !!this.screen,
    });
  }

  setMuted(on) {
    this.muted = on;
    for (const t of this.local?.getAudioTracks() ?? []) t.enabled = !on;
    this.sendState();
    this.changed();
  }

  applyDeafen() {
    for (const p of this.peers.values()) for (const t of p.stream.getAudioTracks()) t.enabled = !this.deafened;
  }

  setDeafened(on) {
    this.deafened = on;
    this.applyDeafen();
    this.sendState();
    this.changed();
  }

  async setCamera(on) {
    if (!this.local) return;
    if (on && !this.camera) {
      const s = await navigator.mediaDevices.getUserMedia({ video: true });
      this.camera = s.getVideoTracks()[0];
      this.local.addTrack(this.camera);
      for (const [id, p] of this.peers) { p.pc.addTrack(this.camera, this.local); await this.negotiate(id, p); }
    } else if (this.camera) {
      this.camera.enabled = on;
    }
    this.sendState();
    this.changed();
  }

  async setScreenShare(on) {
    if (!this.local) return;
    if (on && !this.screen) {
      const s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      this.screen = s.getVideoTracks()[0];
      this.screen.onended = () => this.setScreenShare(false);
      for (const [id, p] of this.peers) { p.pc.addTrack(this.screen, this.local); await this.negotiate(id, p); }
    } else if (!on && this.screen) {
      const track = this.screen;
      this.screen = null;
      track.stop();
      for (const [id, p] of this.peers) {
        const sender = p.pc.getSenders().find((x) => x.track === track);
        if (sender) { p.pc.removeTrack(sender); await this.negotiate(id, p); }
      }
    }
    this.sendState();
    this.changed();
  }

  // For tests and diagnostics: the selected ICE pair of every peer connection.
  async selectedPairs() {
    const out = [];
    for (const [id, p] of this.peers) {
      const stats = await p.pc.getStats();
      let pair = null;
      stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
      if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
      out.push({
        id,
        local: pair && stats.get(pair.localCandidateId)?.candidateType,
        remote: pair && stats.get(pair.remoteCandidateId)?.candidateType,
        bytesSent: pair?.bytesSent ?? 0,
        bytesReceived: pair?.bytesReceived ?? 0,
        connection: p.pc.connectionState,
      });
    }
    return out;
  }
}

// ---- the view: a call button per contact and for the whole circle, tiles, toggles ----

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

export function mountCallView(section, { identity, socket }) {
  const call = new CallClient({ socket, keyHash: identity.keyHash, onChange: () => render() });
  section.hidden = false;
  section.replaceChildren();
  const head = el('div', { class: 'call-head' });
  const pick = el('select', { class: 'call-pick', 'aria-label': 'Call whom' });
  const others = identity.directory.filter((e) => !e.self);
  for (const e of others) pick.append(el('option', { value: e.keyHash }, `Member ${e.member}`));
  pick.append(el('option', { value: '*' }, 'Everyone (group call)'));
  const start = el('button', { type: 'button', class: 'call-start' }, 'Call');
  const hang = el('button', { type: 'button', class: 'call-hangup' }, 'Hang up');
  const mute = el('button', { type: 'button', 'aria-pressed': 'false' }, 'Mute');
  const deaf = el('button', { type: 'button', 'aria-pressed': 'false' }, 'Deafen');
  const cam = el('button', { type: 'button', 'aria-pressed': 'false' }, 'Camera');
  const scr = el('button', { type: 'button', 'aria-pressed': 'false' }, 'Share screen');
  const status = el('p', { class: 'call-status', role: 'status' });
  const tiles = el('div', { class: 'call-tiles' });
  head.append(pick, start, hang, mute, deaf, cam, scr);
  section.append(head, status, tiles);
  const views = new Map(); // id -> video element

  const tile = (id, label, stream, muted) => {
    let v = views.get(id);
    if (!v) {
      const box = el('figure', { class: 'call-tile' });
      v = el('video', { autoplay: '', playsinline: '' });
      v.muted = muted;
      box.append(v, el('figcaption', {}, label));
      tiles.append(box);
      views.set(id, v);
    }
    if (v.srcObject !== stream) v.srcObject = stream;
    const caption = v.nextElementSibling;
    if (caption.textContent !== label) caption.textContent = label;
    return v;
  };

  function render() {
    const inCall = !!call.room;
    start.disabled = inCall;
    pick.disabled = inCall;
    for (const b of [hang, mute, deaf, cam, scr]) b.disabled = !inCall;
    mute.setAttribute('aria-pressed', String(call.muted));
    deaf.setAttribute('aria-pressed', String(call.deafened));
    cam.setAttribute('aria-pressed', String(!!call.camera?.enabled));
    scr.setAttribute('aria-pressed', String(!!call.screen));
    status.textContent = call.error ?? (inCall ? `In call: ${call.peers.size} other(s)` : '');
    const live = new Set();
    if (inCall && call.local) { tile('self', 'You', call.local, true); live.add('self'); }
    for (const [id, p] of call.peers) {
      const who = identity.directory.find((e) => e.keyHash === p.keyHash);
      const flags = p.state ? `${p.state.muted ? ' (muted)' : ''}${p.state.deafened ? ' (deafened)' : ''}` : '';
      tile(id, `${who ? `Member ${who.member}` : 'Peer'}${flags}`, p.stream, false);
      live.add(id);
    }
    for (const [id, v] of views) if (!live.has(id)) { v.closest('figure').remove(); views.delete(id); }
  }

  start.addEventListener('click', async () => {
    const members = pick.value === '*' ? identity.directory.map((e) => e.keyHash) : [identity.keyHash, pick.value];
    try { await call.join(await roomIdFor(members), members, { video: false }); } catch { /* shown */ }
    render();
  });
  hang.addEventListener('click', () => call.leave());
  mute.addEventListener('click', () => call.setMuted(!call.muted));
  deaf.addEventListener('click', () => call.setDeafened(!call.deafened));
  cam.addEventListener('click', () => call.setCamera(!call.camera?.enabled).catch(() => {}));
  scr.addEventListener('click', () => call.setScreenShare(!call.screen).catch(() => {}));
  render();
  return call;
}

session.onReady(({ identity, socket }) => {
  const section = document.getElementById('call');
  if (section && identity && socket) mountCallView(section, { identity, socket });
});
