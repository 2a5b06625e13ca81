// A stand-in for a BenchTalks 1.2.0 bench's park side, written from BenchTalks' sources
// (pkg/server/hub.go and its NATS relay): the same subjects, the same JSON payloads (Go's
// field names and order), the same checks. Its "local clients" are a list of delivered frames.
//
//   room.public.<room>          ParkMessage        {"benchId":…,"payload":base64(frame)}
//   bench.pair.verify.<room>    PairClaimMessage   {"claimerBenchId":…,"rawToken":…}
//   bench.pair.approved|rejected.<room>
//                               PairResponseMessage {"claimerBenchId":…,"approverBenchID":…,"approved":…}
import crypto from 'node:crypto';

// Go's buildOutgoing: json.Marshal of {Type, Payload, SenderID} (Go escapes <, > and &).
export function buildOutgoing(type, payload, senderId) {
  const esc = (s) => JSON.stringify(s).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
  return `{"type":${esc(type)},"payload":${esc(payload)},"senderId":${esc(senderId)}}`;
}

// Go's json.Unmarshal into a struct: field names match case-insensitively.
function field(obj, name) {
  for (const k of Object.keys(obj)) if (k.toLowerCase() === name.toLowerCase()) return obj[k];
  return undefined;
}

export class BenchTalksStandin {
  constructor(nc, benchId) {
    this.nc = nc;
    this.benchId = benchId;
    this.pairingTokens = new Map(); // sha256 hex -> {roomId, claimerId, expiresAt, used}
    this.trustedPeers = new Map(); // roomId -> Set(benchId)
    this.delivered = []; // {roomId, payload} given to local clients
    this.responses = []; // pair responses heard (for the test)
    this.publicRooms = new Set();
  }

  async start() {
    await this.nc.sub('room.public.*', (s, d) => this.handleIncoming(s, d));
    await this.nc.sub('bench.pair.verify.*', (s, d) => this.handlePairVerify(s, d));
    await this.nc.sub('bench.pair.approved.*', (s, d) => this.handlePairApproved(s, d));
    await this.nc.sub('bench.pair.rejected.*', (s, d) => this.handlePairRejected(s, d));
  }

  // Hub.GeneratePairToken (the admin check is the WebSocket side's; not modelled).
  generatePairToken(roomId, claimerBenchId) {
    const raw = crypto.randomBytes(32);
    const hashHex = crypto.createHash('sha256').update(raw).digest('hex');
    this.pairingTokens.set(hashHex, { roomId, claimerId: claimerBenchId, expiresAt: Date.now() + 5 * 60_000, used: false });
    return raw.toString('base64');
  }

  // Hub.VerifyPairClaim
  verifyPairClaim(roomId, rawToken, claimerBenchId) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(rawToken) || rawToken.length % 4) return false;
    const hashHex = crypto.createHash('sha256').update(Buffer.from(rawToken, 'base64')).digest('hex');
    const rec = this.pairingTokens.get(hashHex);
    if (!rec || rec.used || Date.now() > rec.expiresAt || rec.claimerId !== claimerBenchId) return false;
    rec.used = true;
    this.registerTrustedPeer(roomId, claimerBenchId);
    return true;
  }

  registerTrustedPeer(roomId, benchId) {
    if (!this.trustedPeers.has(roomId)) this.trustedPeers.set(roomId, new Set());
    this.trustedPeers.get(roomId).add(benchId);
  }
  isTrustedPeer(roomId, benchId) { return this.trustedPeers.get(roomId)?.has(benchId) ?? false; }
  hasTrustedPeers(roomId) { return (this.trustedPeers.get(roomId)?.size ?? 0) > 0; }

  // Hub.Broadcast's park half: public room with a trusted peer -> Relay.Publish.
  broadcast(roomId, message) {
    if (this.publicRooms.has(roomId) && this.hasTrustedPeers(roomId)) this.publish(roomId, message);
  }

  // Relay.Publish: ParkMessage with Payload []byte (base64 in JSON).
  publish(roomId, message) {
    const data = `{"benchId":${JSON.stringify(this.benchId)},"payload":"${Buffer.from(message).toString('base64')}"}`;
    this.nc.pub(`room.public.${roomId}`, data);
  }

  // Relay.PublishPairClaim
  publishPairClaim(roomId, rawToken, claimerBenchId) {
    this.nc.pub(`bench.pair.verify.${roomId}`, `{"claimerBenchId":${JSON.stringify(claimerBenchId)},"rawToken":${JSON.stringify(rawToken)}}`);
  }

  // Relay.PublishPairResponse
  publishPairResponse(roomId, claimerBenchId, approved) {
    const data = `{"claimerBenchId":${JSON.stringify(claimerBenchId)},"approverBenchID":${JSON.stringify(this.benchId)},"approved":${approved}}`;
    this.nc.pub(`bench.pair.${approved ? 'approved' : 'rejected'}.${roomId}`, data);
  }

  // json.Unmarshal into the struct: null when it fails (not an object, or a field of the wrong
  // type); absent fields keep Go's zero values.
  parse(data, types) {
    let v;
    try { v = JSON.parse(data.toString()); } catch { return null; }
    if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
    const out = {};
    for (const [name, type] of Object.entries(types)) {
      const x = field(v, name);
      if (x === undefined || x === null) out[name] = type === 'boolean' ? false : '';
      else if (typeof x !== type) return null;
      else out[name] = x;
    }
    return out;
  }

  // Relay.handlePairVerify -> Hub.HandlePairClaim
  handlePairVerify(subject, data) {
    const claim = this.parse(data, { claimerBenchId: 'string', rawToken: 'string' });
    if (!claim) return;
    const roomId = subject.slice('bench.pair.verify.'.length);
    if (!roomId) return;
    const approved = this.verifyPairClaim(roomId, claim.rawToken, claim.claimerBenchId);
    this.publishPairResponse(roomId, claim.claimerBenchId, approved);
  }

  // Relay.handlePairApproved -> Hub.HandlePairApproved
  handlePairApproved(subject, data) {
    const r = this.parse(data, { claimerBenchId: 'string', approverBenchID: 'string', approved: 'boolean' });
    if (!r) return;
    this.responses.push({ subject, ...r });
    if (r.claimerBenchId !== this.benchId) return;
    const roomId = subject.slice('bench.pair.approved.'.length);
    if (!roomId) return;
    this.registerTrustedPeer(roomId, r.approverBenchID);
    this.delivered.push({ roomId, payload: buildOutgoing('pair_approved', r.approverBenchID, '') });
  }

  handlePairRejected(subject, data) {
    const r = this.parse(data, { claimerBenchId: 'string', approverBenchID: 'string', approved: 'boolean' });
    if (r) this.responses.push({ subject, ...r });
  }

  // Relay.handleIncoming -> Hub.BroadcastFromPark
  handleIncoming(subject, data) {
    const park = this.parse(data, { benchId: 'string', payload: 'string' });
    if (!park) return;
    const benchId = park.benchId;
    if (benchId === this.benchId) return;
    const roomId = subject.slice('room.public.'.length);
    if (!roomId) return;
    if (!this.isTrustedPeer(roomId, benchId)) return;
    const payload = Buffer.from(park.payload, 'base64').toString();
    this.delivered.push({ roomId, payload });
  }
}
