// Cluster mode (issue 7, deliverable 3): three real parleyd nodes with the bench profile share
// rooms through one real nats-server (JetStream on). Members on A, B and C see each other's
// messages exactly once, welcome/join/leave counts include every node, two first joiners on
// different nodes racing for a new room give it exactly one admin (JetStream KV create-only),
// and kill -9 of one node makes the others see its members leave within node_ttl + heartbeat.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import {
  adminToken, benchJoin, client, clusterFixture, roomId, sleep, until, wsUrl,
} from './lib/nats_cluster.mjs';

const TEMPLATE = process.env.PARLEY_NATS_CLUSTER_PROFILE;
const skip = !(process.env.PARLEYD && TEMPLATE) ? 'PARLEYD and PARLEY_NATS_CLUSTER_PROFILE not set' : false;
if (skip && process.env.PARLEY_REQUIRE_SERVER === '1') throw new Error(`cannot run: ${skip}`);

const HEARTBEAT_MS = 200; // as in the profile
const NODE_TTL_MS = 1000;


describe('bench cluster of three nodes', { skip, timeout: 100_000 }, () => {
  const cluster = clusterFixture({ template: TEMPLATE, count: 3, prefix: 't' });
  const { nodes, clients } = cluster;
  const join = (node, room, adminHash = '') => benchJoin(clients, node, room, adminHash);


  it('members on A, B and C: counts and every message exactly once', async () => {
    const [A, B, C] = nodes;
    const room = roomId();
    const a = await join(A, room);
    assert.equal(a.count, 1);
    const b = await join(B, room);
    assert.equal(b.count, 2, 'B counts the member on A');
    await a.wait((f) => f.type === 'join' && f.senderId === b.id, 'A hears B join');
    const c = await join(C, room);
    assert.equal(c.count, 3, 'C counts the members on A and B');
    await a.wait((f) => f.type === 'join' && f.senderId === c.id, 'A hears C join');
    await b.wait((f) => f.type === 'join' && f.senderId === c.id, 'B hears C join');

    const msgs = [[a, 'from-a'], [b, 'from-b'], [c, 'from-c']];
    for (const [who, text] of msgs) who.send({ type: 'message', roomId: room, payload: text });
    for (const [who, text] of msgs)
      for (const other of [a, b, c].filter((x) => x !== who))
        await other.wait((f) => f.type === 'message' && f.payload === text, `${text} everywhere`);
    await sleep(4 * HEARTBEAT_MS); // duplicates would have arrived by now
    for (const [who, text] of msgs) {
      assert.equal(who.of((f) => f.type === 'message' && f.payload === text).length, 0, 'no echo');
      for (const other of [a, b, c].filter((x) => x !== who)) {
        const got = other.of((f) => f.type === 'message' && f.payload === text);
        assert.equal(got.length, 1, `${text} exactly once`);
        assert.equal(got[0].senderId, who.id);
      }
    }

    await b.close();
    await a.wait((f) => f.type === 'leave' && f.senderId === b.id, 'A hears B leave');
    await c.wait((f) => f.type === 'leave' && f.senderId === b.id, 'C hears B leave');
    const d = await join(A, room);
    assert.equal(d.count, 3, 'a, c and d: b left');
    await c.wait((f) => f.type === 'join' && f.senderId === d.id, 'C hears D join');
  });

  it('two first joiners on different nodes: exactly one becomes admin', async () => {
    const [A, B, C] = nodes;
    for (let round = 0; round < 3; ++round) {
      const room = roomId();
      const tx = adminToken();
      const ty = adminToken();
      const [x, y] = await Promise.all([join(A, room, tx.hash), join(B, room, ty.hash)]);
      const z = await join(C, room);
      // The KV decision is a round trip: give it time, then both try an admin action.
      await sleep(500);
      x.send({ type: 'make_public', roomId: room, payload: tx.token });
      y.send({ type: 'make_public', roomId: room, payload: ty.token });
      await z.wait((f) => f.type === 'made_public', 'the admin made it public');
      const refused = (c) => c.of((f) => f.type === 'error' && /admin token/.test(f.payload)).length;
      await until(() => refused(x) + refused(y) === 1, 'one refusal', 3000);
      await sleep(300);
      assert.equal(refused(x) + refused(y), 1, 'exactly one of the two is refused');
      assert.equal(z.of((f) => f.type === 'made_public').length, 1, 'C saw one made_public');
      const admin = refused(x) ? y : x;
      assert.equal(admin.of((f) => f.type === 'made_public').length, 1);
    }
  });

  // These clients never react to `deleted` or `kicked` (as a modified client would not): the
  // member's own node must close them. All clients share 127.0.0.1, hence one room per case.
  const adminOnAMemberOnB = async () => {
    const [A, B] = nodes;
    const room = roomId();
    const t = adminToken();
    const a = await join(A, room, t.hash);
    const b = await join(B, room);
    await a.wait((f) => f.type === 'join' && f.senderId === b.id, 'A hears B join');
    await sleep(500); // the admin claim is a KV round trip
    return { room, t, a, b };
  };

  it('admin on A deletes the room: B closes its member (1000) and the room is gone on B', async () => {
    const B = nodes[1];
    const { room, t, a, b } = await adminOnAMemberOnB();
    a.send({ type: 'delete', roomId: room, payload: t.token });
    await b.wait((f) => f.type === 'deleted', 'B hears deleted');
    await until(() => b.closed, 'B closes its member');
    assert.equal(b.closed.code, 1000);
    assert.equal(b.closed.reason, 'bench deleted');
    await until(() => a.closed, 'A closes the admin');
    assert.equal(b.of((f) => f.type === 'leave').length, 0, 'no leave notices on delete');
    // The next joiner on B starts a new room and, once the emptied room's admin key has left
    // the cluster's KV (asynchronous: polled, not slept for), becomes its admin.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const t2 = adminToken();
      const n = await join(B, room, t2.hash);
      assert.equal(n.count, 1, 'the next joiner on B starts a new room');
      await sleep(300); // the admin claim is a KV round trip
      n.send({ type: 'make_public', roomId: room, payload: t2.token });
      const f = await n.wait((x) => x.type === 'made_public' || x.type === 'error', 'make_public answered');
      if (f.type === 'made_public') break;
      assert.ok(Date.now() < deadline, "the deleted room's admin key was never released");
      n.ws.close();
      await until(() => n.closed, 'the retrying joiner is closed');
      await sleep(HEARTBEAT_MS);
    }
  });

  it('admin on A bans a member on B: B closes it (1008) and refuses it there', async () => {
    const B = nodes[1];
    const { room, a, b } = await adminOnAMemberOnB();
    a.send({ type: 'ban_client', roomId: room, payload: b.id });
    const k = await b.wait((f) => f.type === 'kicked', 'B hears kicked');
    assert.equal(k.senderId, b.id);
    await until(() => b.closed, 'B closes the banned member');
    assert.equal(b.closed.code, 1008);
    assert.equal(b.closed.reason, 'banned');
    await a.wait((f) => f.type === 'leave' && f.senderId === b.id, 'A hears the leave');
    await sleep(300);
    assert.equal(a.of((f) => f.type === 'leave' && f.senderId === b.id).length, 1, 'one leave');
    assert.equal(a.of((f) => f.type === 'error').length, 0, 'the ban of a remote member is no error');
    assert.equal(a.closed, null, 'the admin stays');

    const again = await client(wsUrl(B));
    clients.push(again);
    again.send({ type: 'join', roomId: room, adminHash: '' });
    await again.wait((f) => f.type === 'banned', 'rejoin through B refused');
    await until(() => again.closed, 'B closes the banned rejoin');
    assert.equal(again.closed.code, 1008);
    assert.equal(again.of((f) => f.type === 'welcome').length, 0);

    a.send({ type: 'ban_client', roomId: room, payload: '00000000-0000-0000-0000-000000000000' });
    await a.wait((f) => f.type === 'error' && /not found/.test(f.payload), 'unknown target refused');
  });

  it('kill -9 of one node: the others see its members leave within the bound', async () => {
    const [A, B, C] = nodes;
    const room = roomId();
    const a = await join(A, room);
    const b = await join(B, room);
    const c1 = await join(C, room);
    const c2 = await join(C, room);
    assert.equal(c2.count, 4);
    await a.wait((f) => f.type === 'join' && f.senderId === c2.id, 'A hears c2');
    await b.wait((f) => f.type === 'join' && f.senderId === c2.id, 'B hears c2');
    const t0 = Date.now();
    C.kill9();
    const bound = NODE_TTL_MS + 2 * HEARTBEAT_MS + 500;
    for (const who of [a, b])
      for (const gone of [c1, c2])
        await who.wait((f) => f.type === 'leave' && f.senderId === gone.id, 'leave of a member on C', bound + 2000);
    const took = Date.now() - t0;
    assert.ok(took <= bound, `leaves seen after ${took} ms (bound ${bound} ms)`);
    await sleep(300);
    for (const who of [a, b])
      for (const gone of [c1, c2])
        assert.equal(who.of((f) => f.type === 'leave' && f.senderId === gone.id).length, 1, 'one leave each');
    const e = await join(A, room);
    assert.equal(e.count, 3, 'a, b and e: the members on C are gone');
    await until(async () => (await A.metric('parley_cluster_nodes')) === 1, 'A forgets C');
    assert.equal(await A.metric('parley_cluster_nodes_expired_total'), 1);
  });
});
