// (k) Calls connect on every network: two real Chromiums behind simulated home routers
// (namespaces, iptables) call each other through peerbox's own app, peerbox on a non-loopback
// "internet" address with the shipped TURN defaults (no allowed_peers, no loopback peers).
// Each case asserts video playing both ways and the path the network allows (the selected
// candidate pair: host, server-reflexive, or relayed over UDP, TCP or TLS), and records the
// time from the second person's Join click to the first remote frame on both screens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import * as net from '../lib/netns.mjs';
import { FLAGS, newPerson } from '../lib/browser.mjs';
import { useNetServer } from '../lib/netserver.mjs';
import { OUT_DIR } from '../lib/paths.mjs';
import { pickRandomRoom, join as joinRoom, waitFor, waitForPlayingVideos, tid } from '../lib/app.mjs';

const BASE = `https://${net.HOST}`;
// Inside the namespaces nothing is loopback; the flag would only add noise candidates.
const NET_FLAGS = FLAGS.filter((f) => f !== '--allow-loopback-in-peer-connection');
const results = [];
// What an admin writes (lib/netserver.mjs): the name, the public address, the shipped defaults.
const env = useNetServer('networks', { onEnd: () => {
  if (results.length) writeFileSync(join(OUT_DIR, 'networks.json'), JSON.stringify(results, null, 2));
} });
const { skip } = env;

/** The selected candidate pair of each of the page's connected peer connections. */
function connectedPaths(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs ?? []) {
      if (pc.connectionState !== 'connected') continue;
      const stats = await pc.getStats();
      const byId = new Map();
      stats.forEach((s) => byId.set(s.id, s));
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
      });
      if (!pair) continue;
      const l = byId.get(pair.localCandidateId);
      const r = byId.get(pair.remoteCandidateId);
      out.push({
        local: l?.candidateType,
        remote: r?.candidateType,
        // How the local side reaches the TURN server when it relays: udp, tcp or tls.
        relayProtocol: l?.relayProtocol ?? null,
        protocol: l?.protocol,
        address: l?.address ?? l?.ip,
        relatedAddress: l?.relatedAddress ?? null,
        policy: pc.getConfiguration().iceTransportPolicy,
      });
    }
    return out;
  });
}

/**
 * Starts a watch in the page (polled every 5 ms there) that records, as wall-clock time, when
 * a remote video first shows a decoded frame; `clickJoin` also clicks Join and records when.
 */
function watchFirstFrame(page, clickJoin) {
  return page.evaluate((click) => {
    window.__firstFrame = new Promise((done) => {
      const timer = setInterval(() => {
        for (const v of document.querySelectorAll('[data-testid="remote-tile"] video')) {
          if (v.getVideoPlaybackQuality().totalVideoFrames > 0) {
            clearInterval(timer);
            done(Date.now());
            return;
          }
        }
      }, 5);
    });
    if (click) {
      window.__joinClicked = Date.now();
      document.querySelector('[data-testid="join-button"]').click();
    }
  }, clickJoin);
}

async function firstFrameAt(page, timeout) {
  return page.evaluate((ms) => Promise.race([
    window.__firstFrame,
    new Promise((_, fail) => setTimeout(() => fail(new Error(`no remote frame in ${ms} ms`)), ms)),
  ]), timeout);
}

const REFLEXIVE = ['srflx', 'prflx'];
const CASES = [
  {
    name: 'both on one LAN',
    spec: { families: ['v4'], sameLan: true, nat: { ra: 'cone' } },
    expect: (p) => assert.deepEqual([p.local, p.remote], ['host', 'host']),
  },
  {
    name: 'each behind a NAT',
    spec: { families: ['v4'], nat: { ra: 'cone', rb: 'cone' } },
    expect: (p) => {
      assert.ok(REFLEXIVE.includes(p.local) && REFLEXIVE.includes(p.remote), 'through the NATs, no relay');
    },
  },
  {
    name: 'symmetric NAT on both sides',
    spec: { families: ['v4'], nat: { ra: 'symmetric', rb: 'symmetric' } },
    expect: (p) => assert.ok(p.local === 'relay' || p.remote === 'relay', 'one side at least relays'),
  },
  {
    name: 'symmetric NAT on one side',
    spec: { families: ['v4'], nat: { ra: 'symmetric', rb: 'cone' } },
    expect: (p) => assert.ok(p.local === 'relay' || p.remote === 'relay', 'one side at least relays'),
  },
  {
    name: 'all UDP blocked',
    spec: { families: ['v4'], nat: { ra: 'cone', rb: 'cone' }, block: { ra: 'udp', rb: 'udp' } },
    expect: (p) => {
      assert.deepEqual([p.local, p.remote], ['relay', 'relay']);
      assert.equal(p.relayProtocol, 'tcp', 'relayed over TCP');
    },
  },
  {
    name: 'only TCP 443 open',
    spec: { families: ['v4'], nat: { ra: 'cone', rb: 'cone' }, block: { ra: 'only443', rb: 'only443' } },
    expect: (p) => {
      assert.deepEqual([p.local, p.remote], ['relay', 'relay']);
      assert.equal(p.relayProtocol, 'tls', 'relayed over TLS on 443');
    },
  },
  {
    name: 'IPv6 only',
    spec: { families: ['v6'] },
    expect: (p) => assert.deepEqual([p.local, p.remote], ['host', 'host']),
  },
  {
    name: 'always relay, IPv4',
    spec: { families: ['v4'], nat: { ra: 'cone', rb: 'cone' } },
    query: '?relay=1',
    expect: (p) => {
      assert.equal(p.policy, 'relay');
      assert.deepEqual([p.local, p.remote], ['relay', 'relay']);
      assert.equal(p.relayProtocol, 'udp');
    },
  },
  {
    name: 'always relay, IPv6',
    spec: { families: ['v6'] },
    query: '?relay=1',
    expect: (p) => {
      assert.equal(p.policy, 'relay');
      // Browsers ask for an IPv4 relay address by default (RFC 6156); these clients have no
      // IPv4 at all, so they reached TURN over IPv6.
      assert.deepEqual([p.local, p.remote], ['relay', 'relay']);
    },
  },
];

for (const c of CASES) {
  test(`network: ${c.name}`, { skip, timeout: 100_000 }, async () => {
    const namespaces = net.clients(c.spec);
    const browsers = [];
    try {
      for (const ns of namespaces) {
        browsers.push(await chromium.launch({
          executablePath: net.chromiumIn(ns, env.dir), headless: true, args: NET_FLAGS, timeout: 60_000,
        }));
      }
      const slug = c.name.replace(/\W+/g, '-');
      const [ann, bob] = [await newPerson(browsers[0], `k-${slug}-ann`), await newPerson(browsers[1], `k-${slug}-bob`)];
      const query = c.query ?? '';
      const room = await pickRandomRoom(ann.page, BASE, query);
      await joinRoom(ann.page, 'Ann');
      await bob.page.goto(`${BASE}/room/${room}${query}${new URL(ann.page.url()).hash}`);
      const name = bob.page.locator(tid('name-input'));
      if (await name.isEditable()) await name.fill('Bob');
      await bob.page.locator(tid('join-button')).waitFor({ state: 'visible' });
      await watchFirstFrame(ann.page, false);
      await watchFirstFrame(bob.page, true);
      const t0 = await bob.page.evaluate(() => window.__joinClicked);
      // A failing network gives up well inside a minute.
      const frames = await Promise.all([ann, bob].map(async (p) => (await firstFrameAt(p.page, 45_000)) - t0));
      await Promise.all([ann, bob].map((p) => waitForPlayingVideos(p.page, 1, 20_000)));
      // ICE may start on a relayed pair and move to a better one as checks succeed: the path
      // asserted is the one the call settles on (within 15 s).
      const paths = [];
      for (const [i, p] of [ann, bob].entries()) {
        let last = null;
        try {
          await waitFor(async () => {
            last = (await connectedPaths(p.page))[0] ?? null;
            if (!last) return false;
            c.expect(last);
            return true;
          }, { timeout: 15_000, interval: 500, what: 'the expected path' });
        } catch (e) {
          const err = new Error(`${['Ann', 'Bob'][i]}: ${e.cause?.message ?? e.message} (${JSON.stringify(last)})`);
          throw err;
        }
        paths.push(last);
      }
      results.push({ network: c.name, firstFrameMs: frames, paths });
      console.log(`# ${c.name}: first remote frame ${frames.join(' / ')} ms; paths ${JSON.stringify(paths)}`);
    } finally {
      await Promise.allSettled(browsers.map((b) => b.close()));
      net.downClients();
    }
  });
}

/**
 * A full room (capacity 4) with relay forced: every member relays to every other over every
 * URL peerbox advertises, and every pair connects (no 486 from the allocation quota, which
 * used to be smaller than a full room).
 */
test('network: a full room, always relay', { skip, timeout: 150_000 }, async () => {
  const namespaces = net.clients({ families: ['v4'], nat: { ra: 'cone', rb: 'cone' } });
  const browsers = [];
  try {
    for (const ns of namespaces) {
      browsers.push(await chromium.launch({
        executablePath: net.chromiumIn(ns, env.dir), headless: true, args: NET_FLAGS, timeout: 60_000,
      }));
    }
    const people = [];
    for (const [i, name] of ['Ann', 'Bob', 'Cid', 'Dee'].entries()) {
      people.push(await newPerson(browsers[i % 2], `k-full-${name}`));
    }
    const room = await pickRandomRoom(people[0].page, BASE, '?relay=1');
    await joinRoom(people[0].page, 'Ann');
    for (const p of people.slice(1)) {
      await p.page.goto(`${BASE}/room/${room}?relay=1${new URL(people[0].page.url()).hash}`);
      await joinRoom(p.page, p.label);
    }
    await Promise.all(people.map((p) => waitForPlayingVideos(p.page, 3, 60_000)));
    for (const p of people) {
      let pairs = [];
      // On this loaded machine a connection may be between two checks for a moment.
      await waitFor(async () => {
        pairs = (await connectedPaths(p.page)).map((x) => [x.local, x.remote]);
        return pairs.length === 3;
      }, { timeout: 20_000, interval: 500, what: `${p.label}: three connected peer connections` })
        .catch((e) => { throw new Error(`${e.message}: ${JSON.stringify(pairs)}`); });
      for (const pair of pairs) assert.deepEqual(pair, ['relay', 'relay'], `${p.label}: relayed`);
    }
    const log = readFileSync(join(OUT_DIR, 'peerbox-networks.log'), 'utf8');
    assert.doesNotMatch(log, /quota reached/, 'no allocation was refused for a quota');
  } finally {
    await Promise.allSettled(browsers.map((b) => b.close()));
    net.downClients();
  }
});
