// (r) The SFU on every kind of network: four real Chromiums' pages (two per client namespace,
// as in k-networks) join one room of 4 with peerbox's SFU on, peerbox on its non-loopback
// "internet" address with the shipped defaults plus `[sfu] enabled`. The pages drive
// RTCPeerConnection themselves from the test (a WSS to the server, login with `sfu: true`,
// `sfu-join`, answer every `sfu-offer`, publish the fake camera), so this does not depend on the
// web client. Four networks: UDP open, only TCP to 443 leaving the clients' namespaces (ICE-TCP
// to the SFU on the HTTPS port, or TURN/TLS on 443 to the SFU's UDP port), relay forced through
// peerbox's own TURN over UDP, and both (TURN/TLS on 443 to the SFU's UDP port). Each asserts
// frames decoded from the three other members and the selected candidate pair; a failure shows
// every candidate pair the page had.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import * as net from '../lib/netns.mjs';
import { FLAGS, newPerson } from '../lib/browser.mjs';
import { useNetServer } from '../lib/netserver.mjs';
import { OUT_DIR } from '../lib/paths.mjs';
import { waitFor } from '../lib/app.mjs';

const BASE = `https://${net.HOST}`;
const NET_FLAGS = FLAGS.filter((f) => f !== '--allow-loopback-in-peer-connection');
const results = [];
// k-networks' config (what an admin writes) plus the SFU.
const env = useNetServer('sfu-networks', { sfu: true, onEnd: () => {
  if (results.length) writeFileSync(join(OUT_DIR, 'sfu-networks.json'), JSON.stringify(results, null, 2));
} });
const { skip } = env;

/**
 * In the page: logs in to `room` over WSS with SFU support, waits for the room to be an SFU
 * room, joins the SFU and answers every offer, publishing the fake camera and microphone.
 */
function startSfuClient(page, room, name, policy, transport) {
  return page.evaluate(async ({ room, name, policy, transport }) => {
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
    const ws = new WebSocket(`wss://${location.host}/ws`);
    const s = { mode: null, offers: 0, errors: [], pc: null };
    window.__sfu = s;
    const send = (type, data) => ws.send(JSON.stringify(data === undefined ? { type } : { type, data }));
    let chain = Promise.resolve();
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === 'joined') {
        s.mode = m.mode;
        // `transport` keeps only the TURN URLs of that transport (and STUN).
        const iceServers = transport
          ? m.iceServers.map((x) => ({
            ...x,
            urls: [].concat(x.urls).filter((u) => !u.startsWith('turn') || u.endsWith(`transport=${transport}`)),
          }))
          : m.iceServers;
        s.pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: policy });
        s.joinedAt = Date.now();
      } else if (m.type === 'mode') {
        s.mode = m.data.mode;
      } else if (m.type === 'error') {
        s.errors.push(m.data);
      } else if (m.type === 'sfu-offer') {
        chain = chain.then(async () => {
          const pc = s.pc;
          await pc.setRemoteDescription({ type: 'offer', sdp: m.data.sdp });
          for (const p of m.data.publish) {
            const t = pc.getTransceivers().find((x) => x.mid === p.mid);
            if (!t) continue;
            t.direction = 'sendonly';
            const track = media.getTracks().find((x) => x.kind === p.kind);
            if (track && t.sender.track !== track) await t.sender.replaceTrack(track);
          }
          await pc.setLocalDescription(await pc.createAnswer());
          send('sfu-answer', { sdp: pc.localDescription.sdp });
          s.offers += 1;
        }).catch((e) => s.errors.push(String(e)));
      }
    };
    await new Promise((ok, fail) => {
      ws.onopen = ok;
      ws.onerror = () => fail(new Error('wss failed'));
    });
    send('login', { roomrequest: room, username: name, sfu: true });
    window.__sfuJoin = () => send('sfu-join');
  }, { room, name, policy, transport });
}

/**
 * Video frames decoded per inbound video stream, the selected candidate pair, and (`ice`, for a
 * failure's message) every local candidate and candidate pair the page has.
 */
function sfuStats(page) {
  return page.evaluate(async () => {
    const s = window.__sfu;
    if (!s?.pc) return { decoded: [], pair: null, mode: s?.mode, errors: s?.errors ?? [] };
    const stats = await s.pc.getStats();
    const byId = new Map();
    stats.forEach((x) => byId.set(x.id, x));
    const decoded = [];
    let pair = null;
    stats.forEach((x) => {
      if (x.type === 'inbound-rtp' && x.kind === 'video') decoded.push(x.framesDecoded ?? 0);
      if (x.type === 'transport' && x.selectedCandidatePairId) pair = byId.get(x.selectedCandidatePairId);
    });
    // Why the expected path was not chosen: a candidate that has no pair shows too.
    const ice = [];
    stats.forEach((x) => {
      if (x.type === 'local-candidate') ice.push(`local ${x.candidateType}/${x.relayProtocol ?? x.protocol} ${x.address}:${x.port}`);
      if (x.type !== 'candidate-pair') return;
      const lc = byId.get(x.localCandidateId);
      const rc = byId.get(x.remoteCandidateId);
      ice.push(`${lc?.candidateType}/${lc?.relayProtocol ?? lc?.protocol}->${rc?.protocol}:${rc?.port} ${x.state}`
        + `${x.nominated ? ' nominated' : ''} req ${x.requestsSent} resp ${x.responsesReceived} rtt ${x.currentRoundTripTime ?? '-'}`);
    });
    const l = pair && byId.get(pair.localCandidateId);
    const r = pair && byId.get(pair.remoteCandidateId);
    return {
      mode: s.mode,
      errors: s.errors,
      state: s.pc.connectionState,
      ice,
      decoded,
      pair: pair && {
        local: l?.candidateType,
        remote: r?.candidateType,
        protocol: l?.protocol,
        remoteProtocol: r?.protocol,
        remotePort: r?.port,
        relayProtocol: l?.relayProtocol ?? null,
        policy: s.pc.getConfiguration().iceTransportPolicy,
      },
    };
  });
}

const CASES = [
  {
    name: 'UDP open',
    spec: { families: ['v4'], nat: { ra: 'cone', rb: 'cone' } },
    expect: (p) => {
      assert.equal(p.protocol, 'udp');
      assert.equal(p.remote, 'host', 'straight to the SFU');
      assert.notEqual(p.local, 'relay');
    },
  },
  {
    name: 'only TCP 443 open',
    spec: { families: ['v4'], nat: { ra: 'cone', rb: 'cone' }, block: { ra: 'only443', rb: 'only443' } },
    expect: (p) => {
      const iceTcp = p.protocol === 'tcp' && p.remoteProtocol === 'tcp' && p.remotePort === 443;
      const turnTls = p.local === 'relay' && p.relayProtocol === 'tls';
      assert.ok(iceTcp || turnTls, 'ICE-TCP on 443 or TURN/TLS on 443');
    },
  },
  {
    name: 'always relay',
    spec: { families: ['v4'], nat: { ra: 'cone', rb: 'cone' } },
    policy: 'relay',
    // TURN over UDP only: against an ICE-lite peer Chromium keeps the first relay pair that
    // works, and on a loaded machine its TURN/TCP allocation is sometimes ready first (seen in
    // CI: relay over TCP with UDP open). This case is about the UDP relay to the SFU's UDP port;
    // TURN/TLS is the next case's.
    transport: 'udp',
    expect: (p) => {
      assert.equal(p.policy, 'relay');
      assert.equal(p.local, 'relay');
      assert.equal(p.relayProtocol, 'udp');
    },
  },
  {
    name: 'only TCP 443 open, always relay',
    spec: { families: ['v4'], nat: { ra: 'cone', rb: 'cone' }, block: { ra: 'only443', rb: 'only443' } },
    policy: 'relay',
    expect: (p) => {
      assert.equal(p.local, 'relay');
      assert.equal(p.relayProtocol, 'tls', 'TURN over TLS on 443 to the SFU');
    },
  },
];

for (const c of CASES) {
  test(`sfu network: ${c.name}`, { skip, timeout: 150_000 }, async () => {
    const namespaces = net.clients(c.spec);
    const browsers = [];
    try {
      for (const ns of namespaces) {
        browsers.push(await chromium.launch({
          executablePath: net.chromiumIn(ns, env.dir), headless: true, args: NET_FLAGS, timeout: 60_000,
        }));
      }
      const slug = c.name.replace(/\W+/g, '-');
      const room = `sfunet-${randomBytes(6).toString('hex')}`;
      const people = [];
      for (const [i, name] of ['Ann', 'Bob', 'Cid', 'Dee'].entries()) {
        const p = await newPerson(browsers[i % 2], `r-${slug}-${name}`);
        // Any page of the origin will do: this one runs no app code.
        await p.page.goto(`${BASE}/ws`);
        await startSfuClient(p.page, room, name, c.policy ?? 'all', c.transport);
        people.push(p);
      }
      await waitFor(async () => {
        for (const p of people) if ((await sfuStats(p.page)).mode !== 'sfu') return false;
        return true;
      }, { timeout: 20_000, what: 'the room to be an SFU room on every page' });
      const t0 = Date.now();
      for (const p of people) await p.page.evaluate(() => window.__sfuJoin());
      const paths = [];
      for (const p of people) {
        let last = null;
        try {
          await waitFor(async () => {
            last = await sfuStats(p.page);
            if (last.errors.length) throw new Error(`errors: ${JSON.stringify(last.errors)}`);
            if (last.decoded.filter((n) => n > 0).length < 3) return false;
            if (!last.pair) return false;
            c.expect(last.pair);
            return true;
          }, { timeout: 45_000, interval: 500, what: 'frames from the three others over the expected path' });
        } catch (e) {
          throw new Error(`${p.label}: ${e.cause?.message ?? e.message} (${JSON.stringify(last)})`);
        }
        paths.push(last.pair);
      }
      const ms = Date.now() - t0;
      results.push({ network: c.name, allDecodingMs: ms, paths });
      console.log(`# ${c.name}: every page decodes the three others ${ms} ms after sfu-join; paths ${JSON.stringify(paths)}`);
    } finally {
      await Promise.allSettled(browsers.map((b) => b.close()));
      net.downClients();
    }
  });
}
