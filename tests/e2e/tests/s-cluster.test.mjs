// (s) A call across a cluster (issue 14): Redis and three peerbox nodes, two Chromiums, each
// reaching another node. The room is placed on the node of the first one to join; the second
// one's node does not hold it and relays him there; their video plays both ways.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startPeerbox } from '../lib/server.mjs';
import { startRedis } from '../lib/redis.mjs';
import { launchBrowser, newPerson, shot } from '../lib/browser.mjs';
import { pickRandomRoom, join, joinByLink, linkHash, waitForPlayingVideos, sessionIds, waitFor } from '../lib/app.mjs';

const NODES = ['n1', 'n2', 'n3'];
let redis = null;
const nodes = [];
const browsers = [];
const people = [];

const startNode = (id) => startPeerbox({
  name: `s-${id}`,
  extraTurn: 'secret = "e2e-turn-secret-e2e-turn-secret-e2e-turn"',
  extra: ({ httpsPort }) => `[cluster]
enabled = true
node_id = "${id}"
address = "127.0.0.1:${httpsPort}"
redis = "${redis.url}"
secret = "e2e-cluster-secret-e2e-cluster-secret-e2e"
node_ttl_secs = 3
redis_timeout_ms = 300
`,
});

/** Whether every node is registered and the directory's first grace period (a refresh and two
 * Redis timeouts: 1.6 s here) is over, so that a login places its room. */
const PLACING = `
local e = redis.call('GET', 'peerbox:epoch')
if not e then return 0 end
local t = redis.call('TIME')
if t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(e) < 2000 then return 0 end
return redis.call('EXISTS', ${NODES.map((n) => `'peerbox:node:${n}'`).join(', ')})`;

before(async () => {
  redis = await startRedis();
  for (const id of NODES) nodes.push(await startNode(id));
  await waitFor(() => redis.cli('EVAL', PLACING, 0) === String(NODES.length), { timeout: 20_000, what: 'the cluster to place rooms' });
  browsers.push(await launchBrowser(), await launchBrowser());
}, { timeout: 120_000 });

after(async () => {
  await Promise.allSettled(people.map((p) => p.close()));
  await Promise.allSettled(browsers.map((b) => b.close()));
  await Promise.allSettled(nodes.map((n) => n.stop()));
  await redis?.stop();
}, { timeout: 60_000 });

test('two Chromiums on different nodes of a three-node cluster call each other, video both ways', { timeout: 150_000 }, async () => {
  const ann = await newPerson(browsers[0], 's-ann');
  const bob = await newPerson(browsers[1], 's-bob');
  people.push(ann, bob);
  const room = await pickRandomRoom(ann.page, nodes[0].url);
  await join(ann.page, 'ann');
  await joinByLink(bob.page, nodes[1].url, room, 'bob', '', linkHash(ann.page));

  // One room in the directory, homed on n1, where Ann is; Bob's page and socket are on n2.
  const rooms = redis.cli('--scan', '--pattern', 'peerbox:room:*').split('\n').filter(Boolean);
  assert.equal(rooms.length, 1, `one room placed: ${rooms}`);
  assert.equal(redis.cli('GET', rooms[0]), 'n1', 'the room lives on the first joiner\'s node');
  assert.ok(bob.page.url().startsWith(nodes[1].url), `Bob is on n2: ${bob.page.url()}`);
  // n2 does not hold the room: it relays Bob's session to n1 (its log says so, at info).
  const n2log = readFileSync(nodes[1].logPath, 'utf8');
  assert.match(n2log, /relaying to home node .*home=n1/, 'n2 relays Bob to n1');

  await Promise.all([ann, bob].map((p) => waitForPlayingVideos(p.page, 1)));
  const ids = await sessionIds([ann.page, bob.page]);
  assert.notEqual(ids[0], ids[1], 'two sessions');
  await shot(bob.page, 's-bob-on-n2');
  await shot(ann.page, 's-ann-on-n1');
});
