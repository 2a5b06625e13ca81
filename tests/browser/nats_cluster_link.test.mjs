// Cluster mode for link-room (issue 7): two parleyd nodes, one throwaway PostgreSQL (history,
// via tests/integration/pg_env.sh) and one nats-server (live messages). A member on each node
// gets the other's messages live, exactly once; a later joiner on either node gets the history
// of both nodes in order; interleaved writes from both nodes never overwrite each other in
// PostgreSQL (their sequences carry each node's slot).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { client, clusterFixture, sleep } from './lib/nats_cluster.mjs';

const TEMPLATE = process.env.PARLEY_NATS_CLUSTER_LINK_PROFILE;
const skip = !(process.env.PARLEYD && TEMPLATE && process.env.PARLEY_TEST_PG)
  ? 'PARLEYD, PARLEY_NATS_CLUSTER_LINK_PROFILE and PARLEY_TEST_PG not set' : false;
if (skip && process.env.PARLEY_REQUIRE_SERVER === '1') throw new Error(`cannot run: ${skip}`);

const iv = Buffer.alloc(12, 7).toString('base64url');
const ct = (t) => Buffer.from(t).toString('base64url');
const text = (m) => Buffer.from(m.ciphertext, 'base64url').toString();

describe('link-room cluster of two nodes on one PostgreSQL', { skip, timeout: 60_000 }, () => {
  const cluster = clusterFixture({ template: TEMPLATE, count: 2, prefix: 'l', vars: { PG: process.env.PARLEY_TEST_PG } });
  const { nodes, clients } = cluster;
  const join = async (node, room, id) => {
    const c = await client(`${node.url.replace('http', 'ws')}/ws/${room}?client=${id}`);
    clients.push(c);
    c.history = (await c.wait((f) => f.type === 'history', 'history')).messages;
    c.connected = await c.wait((f) => f.type === 'system' && f.event === 'connected', 'connected');
    return c;
  };

  it('live messages across nodes, shared history, no sequence collisions', async () => {
    const [A, B] = nodes;
    const room = `cl${process.pid}`;
    const u1 = await join(A, room, 'usera1');
    const u2 = await join(B, room, 'userb2');
    assert.equal(u2.connected.members, 2, 'B counts the member on A');
    await u1.wait((f) => f.type === 'system' && f.event === 'joined' && f.clientId === 'userb2', 'A hears B join');

    // Interleaved from both nodes, faster than a clock tick apart.
    const sent = [];
    for (let i = 0; i < 10; ++i) {
      for (const [who, name] of [[u1, 'a'], [u2, 'b']]) {
        const t = `${name}-${i}`;
        who.send({ type: 'message', iv, ciphertext: ct(t) });
        sent.push(t);
      }
    }
    const live = (c, from) => c.of((f) => f.type === 'message' && f.from === from).map(text);
    await sleep(100);
    for (let i = 0; i < 100 && (live(u1, 'userb2').length < 10 || live(u2, 'usera1').length < 10); ++i) await sleep(50);
    await sleep(300);
    assert.deepEqual(live(u2, 'usera1'), sent.filter((t) => t.startsWith('a-')), 'A -> B once each, in order');
    assert.deepEqual(live(u1, 'userb2'), sent.filter((t) => t.startsWith('b-')), 'B -> A once each, in order');
    assert.equal(live(u1, 'usera1').length, 0, 'no echo');

    // Every record of both nodes is in PostgreSQL (a colliding sequence would have overwritten
    // one), in sequence order, which follows each node's sending order.
    for (const [node, id] of [[A, 'latera'], [B, 'laterb']]) {
      const late = await join(node, room, id);
      const got = late.history.map(text);
      assert.equal(got.length, 20, `${id}: ${JSON.stringify(got)}`);
      assert.deepEqual([...got].sort(), [...sent].sort(), 'all 20, none lost');
      for (const name of ['a', 'b']) {
        const mine = got.filter((t) => t.startsWith(`${name}-`)).map((t) => Number(t.slice(2)));
        assert.deepEqual(mine, [...Array(10).keys()], `node ${name}'s messages in its order`);
      }
    }

    // B dies: A's members hear its members leave (their farewells) within node_ttl + heartbeat.
    const t0 = Date.now();
    B.kill9();
    for (const gone of ['userb2', 'laterb'])
      await u1.wait((f) => f.type === 'system' && f.event === 'left' && f.clientId === gone, `${gone} left`, 4000);
    assert.ok(Date.now() - t0 <= 1000 + 400 + 500, `left after ${Date.now() - t0} ms`);
  });
});
