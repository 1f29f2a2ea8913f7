// (t) The real app's SFU room in the simulated internet of lib/netns.mjs, peerbox with the
// shipped defaults plus `[sfu] enabled` (r-sfu-networks' config; a room of more than
// `rooms.sfu_from` = 3 goes through the SFU). Two cases:
// - only TCP 443 leaves the clients' namespaces: four people join through the app's own UI and
//   everyone sees every other member's video through the SFU (frames decoded per member, the SFU
//   connection's selected pair is TCP to 443 or TURN/TLS on 443), at phone portrait, phone
//   landscape and desktop (screenshots, tiles not black);
// - UDP open, one member's downlink shaped with tc (a token bucket on its router's LAN port,
//   150-250 kbit/s: below what the camera's m layer takes) while it shows another member
//   pinned large: what it decodes of that member drops to the camera's low simulcast layer,
//   and climbs back to the high one once the shaping is gone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import * as net from '../lib/netns.mjs';
import { useNetServer } from '../lib/netserver.mjs';
import { DESKTOP, FLAGS, PHONE, newPerson, shot, withoutDevices } from '../lib/browser.mjs';
import {
  join as joinRoom, joinByLink, linkHash, pickRandomRoom, sessionIds, tid, tileBrightness, waitFor,
  waitForPlayingVideos, waitForTiles,
} from '../lib/app.mjs';

const BASE = `https://${net.HOST}`;
// Inside the namespaces nothing is loopback; the flag would only add noise candidates.
const NET_FLAGS = FLAGS.filter((f) => f !== '--allow-loopback-in-peer-connection');
const env = useNetServer('sfu-app-networks', { sfu: true });
const { skip } = env;

/** Makes the fake camera capture at `size` whatever the app asks (the app asks for no size). */
function camera({ width, height, frameRate }) {
  const md = navigator.mediaDevices;
  const orig = md.getUserMedia.bind(md);
  md.getUserMedia = (c = {}) => orig(c.video ? { ...c, video: { ...(typeof c.video === 'object' ? c.video : {}), width, height, frameRate } } : c);
}
/** A small camera (one layer) at 10 fps: spares the two cores in the four-camera case. */
const SMALL = { width: 320, height: 240, frameRate: 10 };
/** Big enough for three simulcast layers (Chromium sends fewer below ~960x540). */
const BIG = { width: 960, height: 540, frameRate: 10 };

/**
 * The page's connection to the SFU (the one whose remote description is ICE-lite: the server's)
 * as getStats sees it: the selected candidate pair; per remote tile, the video decoded from that
 * member (matched by track id); and the camera's simulcast layers this page sends.
 */
function sfuLink(page) {
  return page.evaluate(async () => {
    const pc = (window.__pcs ?? []).find((x) => x.connectionState !== 'closed' && x.remoteDescription?.sdp.includes('a=ice-lite'));
    if (!pc) return null;
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    let pair = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId); });
    const l = pair && byId.get(pair.localCandidateId);
    const r = pair && byId.get(pair.remoteCandidateId);
    const inbound = new Map();
    const sent = {};
    stats.forEach((s) => {
      if (s.kind !== 'video') return;
      if (s.type === 'inbound-rtp') inbound.set(s.trackIdentifier, s);
      if (s.type === 'outbound-rtp' && s.rid && s.frameWidth) {
        sent[s.rid] = { w: s.frameWidth, h: s.frameHeight, fps: s.framesPerSecond ?? 0, bytes: s.bytesSent, at: s.timestamp };
      }
    });
    const from = {};
    for (const tile of document.querySelectorAll('[data-testid="remote-tile"]')) {
      const v = tile.querySelector('video');
      const track = v?.srcObject?.getVideoTracks?.()[0];
      const s = track && inbound.get(track.id);
      from[tile.getAttribute('data-peer-id')] = s
        ? { decoded: s.framesDecoded ?? 0, w: s.frameWidth ?? 0, h: s.frameHeight ?? 0, shownW: v.videoWidth, boxW: v.clientWidth }
        : null;
    }
    return {
      state: pc.connectionState,
      pair: pair && {
        local: l?.candidateType,
        protocol: l?.protocol,
        relayProtocol: l?.relayProtocol ?? null,
        remote: r?.candidateType,
        remoteProtocol: r?.protocol,
        remotePort: r?.port,
      },
      from,
      sent,
    };
  });
}

/** Waits until `page` shows `n` tiles, all of them through the SFU. */
const viaSfu = (page, n, timeout = 45_000) => waitFor(async () => {
  const via = await page.locator(tid('remote-tile')).evaluateAll((els) => els.map((e) => e.getAttribute('data-via')));
  return via.length === n && via.every((v) => v === 'sfu') ? via : null;
}, { timeout, what: `${n} tiles shown through the SFU` });

/** Waits until the page says its room is an SFU room. */
const sfuMode = (p, timeout = 45_000) => waitFor(async () =>
  (await p.page.locator(tid('trust-summary')).getAttribute('data-mode')) === 'sfu', { timeout, what: `${p.name}'s room to be an SFU room` });

/**
 * Runs one case's body after the previous one's has ended: a case that timed out goes on in
 * the background, and its clean-up (net.downClients) must not take the next case's namespaces.
 */
let previous = Promise.resolve();
function oneAtATime(body) {
  return async () => {
    const before = previous;
    let done;
    previous = new Promise((r) => { done = r; });
    await before;
    try {
      await body();
    } finally {
      done();
    }
  };
}

/** Logs `what` with the time since the test began (where a slow run spends it). */
function stopwatch(label) {
  const t0 = Date.now();
  return (what) => console.log(`# ${label}: ${what} at ${Date.now() - t0} ms`);
}

/** One Chromium per client namespace. */
async function browsersIn(namespaces) {
  const out = [];
  for (const ns of namespaces) {
    out.push(await chromium.launch({ executablePath: net.chromiumIn(ns, env.dir), headless: true, args: NET_FLAGS, timeout: 60_000 }));
  }
  return out;
}

/**
 * The first person makes a dice room and joins, the others open its link one after another; resolves once all four
 * show three tiles and say the room is an SFU room, with their session ids. `mark` logs the steps.
 */
async function joinFour(people, mark) {
  const [first, ...rest] = people;
  const room = await pickRandomRoom(first.page, BASE);
  await joinRoom(first.page, first.name);
  const hash = linkHash(first.page);
  for (const p of rest) await joinByLink(p.page, BASE, room, p.name, '', hash);
  mark('all four joined');
  await Promise.all(people.map((p) => waitForTiles(p.page, 3, 60_000)));
  await Promise.all(people.map((p) => sfuMode(p)));
  mark('all four show three tiles in SFU mode');
  return sessionIds(people.map((p) => p.page));
}

// 45-70 s at a load average of 10-15 on two cores, 90-95 s at 20-25 (other builds): bound at 120 s.
test('sfu app network: only TCP 443 open, four people see each other through the SFU at every size', { skip, timeout: 120_000 }, oneAtATime(async () => {
  const mark = stopwatch('only 443');
  const [ca, cb] = net.clients({ families: ['v4'], nat: { ra: 'cone', rb: 'cone' }, block: { ra: 'only443', rb: 'only443' } });
  const browsers = await browsersIn([ca, cb]);
  mark('browsers up');
  try {
    const devices = [
      ['Ann', 0, PHONE, 'phone-portrait'],
      ['Bob', 1, { ...PHONE, viewport: { width: 844, height: 390 }, deviceScaleFactor: 2 }, 'phone-landscape'],
      ['Cid', 0, DESKTOP, 'desktop'],
      ['Dee', 1, DESKTOP, null],
    ];
    const people = [];
    for (const [name, b, device, size] of devices) {
      const p = await newPerson(browsers[b], `t-443-${name}`, device);
      await p.context.addInitScript(camera, SMALL);
      people.push({ ...p, name, size });
    }
    mark('four browser contexts ready');
    const ids = await joinFour(people, mark);
    // Where the time goes between the mode and the tiles: the connection, then the media.
    await Promise.all(people.map((p) => waitFor(async () => (await sfuLink(p.page))?.state === 'connected', {
      timeout: 45_000, what: `${p.name}'s SFU connection to connect`,
    })));
    mark('every SFU connection connected');
    await Promise.all(people.map((p) => viaSfu(p.page, 3)));
    mark('every tile through the SFU');
    await Promise.all(people.map((p) => waitForPlayingVideos(p.page, 3, 45_000)));
    mark('all four play the three others');

    // Each page at once: on a busy machine one page's getStats takes seconds.
    await Promise.all(people.map(async (p, i) => {
      const others = ids.filter((_, j) => j !== i);
      let last = null;
      try {
        await waitFor(async () => {
          last = await sfuLink(p.page);
          if (!last?.pair) return false;
          for (const id of others) if (!(last.from[id]?.decoded > 0)) return false;
          return true;
        }, { timeout: 20_000, what: 'frames decoded from each of the three others on the SFU connection' });
      } catch (e) {
        throw new Error(`${p.name}: ${e.message} (${JSON.stringify(last)})`);
      }
      const q = last.pair;
      const iceTcp = q.protocol === 'tcp' && q.remoteProtocol === 'tcp' && q.remotePort === 443;
      const turnTls = q.local === 'relay' && q.relayProtocol === 'tls';
      assert.ok(iceTcp || turnTls, `${p.name}: the SFU connection goes over ICE-TCP to 443 or TURN/TLS on 443: ${JSON.stringify(q)}`);
      console.log(`# ${p.name}: SFU path ${JSON.stringify(q)}`);
    }));
    mark('frames and paths checked');

    // One page after another: screenshots at once took four times as long here.
    for (const [i, p] of people.entries()) {
      if (p.size) await shot(p.page, `t-sfu-443-${p.size}`);
      for (const id of ids.filter((_, j) => j !== i)) {
        const b = await tileBrightness(p.page, id);
        assert.ok(b > 15, `${p.name}: the tile of ${id} is black (${b.toFixed(1)})`);
      }
    }
    mark('screenshots taken, no tile black');
  } finally {
    await Promise.allSettled(browsers.map((b) => b.close()));
    net.downClients();
  }
}));

// 45-60 s (most of it the estimate's climb back); each wait bounded, the whole at 120 s.
test('sfu app network: a thin downlink gets the low layer of the member it shows large, and the high one back', { skip, timeout: 120_000 }, oneAtATime(async () => {
  // Bob alone behind router rb: only his downlink is shaped. Ann publishes a camera big
  // enough for three layers; Cid and Dee (no devices) only make the room an SFU room.
  const mark = stopwatch('thin downlink');
  const [ca, cb] = net.clients({ families: ['v4'], nat: { ra: 'cone', rb: 'cone' } });
  const browsers = await browsersIn([ca, cb]);
  mark('browsers up');
  try {
    const people = [];
    for (const [name, b, cam] of [['Ann', 0, BIG], ['Bob', 1, null], ['Cid', 0, null], ['Dee', 0, null]]) {
      const p = await newPerson(browsers[b], `t-tc-${name}`, DESKTOP);
      if (cam) await p.context.addInitScript(camera, cam);
      else await withoutDevices(p);
      people.push({ ...p, name });
    }
    const [ann, bob] = people;
    mark('four browser contexts ready');
    const ids = await joinFour(people, mark);
    const annId = ids[0];
    await waitForPlayingVideos(bob.page, 3, 45_000, [annId]);
    mark('Bob plays Ann');
    await bob.page.locator(`${tid('remote-tile')}[data-peer-id="${annId}"] ${tid('tile-pin')}`).click();

    // Ann sends three layers; the high one at the capture's size.
    const layers = await waitFor(async () => {
      const s = (await sfuLink(ann.page))?.sent ?? {};
      return s.h && s.m && s.l && s.h.w > s.m.w && s.m.w > s.l.w ? s : null;
    }, { timeout: 20_000, what: 'Ann to send the h, m and l layers' });
    await new Promise((r) => setTimeout(r, 2_000));
    const later = (await sfuLink(ann.page)).sent;
    const kbps = (rid) => Math.round(((later[rid].bytes - layers[rid].bytes) * 8) / (later[rid].at - layers[rid].at));
    console.log(`# Ann sends ${['h', 'm', 'l'].map((r) => `${r} ${later[r].w}x${later[r].h} ${later[r].fps} fps ${kbps(r)} kbit/s`).join(', ')}`);

    // What Bob decodes of Ann, beside what Ann sends at that moment (her encoder may scale all
    // layers down when the machine is busy, so the layers are compared, not fixed sizes).
    const sample = async () => {
      const [b, a] = await Promise.all([sfuLink(bob.page), sfuLink(ann.page)]);
      return { got: b?.from[annId] ?? null, sent: a?.sent ?? {} };
    };
    const layerOf = ({ got, sent }) => {
      if (!got?.w) return null;
      return Object.entries(sent).find(([, s]) => s.w === got.w)?.[0] ?? `${got.w}x${got.h}`;
    };
    let last = null;
    const waitLayer = (rid, timeout, what) => waitFor(async () => {
      last = await sample();
      return layerOf(last) === rid ? last : null;
    }, { timeout, interval: 500, what }).catch((e) => {
      throw new Error(`${e.message} (last: ${JSON.stringify(last)})`);
    });

    const t0 = Date.now();
    // Up to 30 s: on a loaded machine the estimate can start low (CPU stalls look like queueing).
    const high = await waitLayer('h', 30_000, 'Bob to decode Ann\'s high layer, pinned large on a free link');
    assert.ok(high.got.boxW > high.sent.m.w, `the pinned tile is wider than the m layer (${high.got.boxW} px)`);
    console.log(`# Bob decodes Ann's h (${high.got.w}x${high.got.h}) in a ${high.got.boxW} px tile ${Date.now() - t0} ms after pinning`);

    // Below what m and the audio take (the fake camera's simple picture needs 140-230 kbit/s
    // for m, not its 400 kbit/s ceiling), above l and the audio, so that l fits and only l.
    const thin = Math.max(150, Math.min(250, Math.round(kbps('m') * 0.9 + 20)));
    net.shapeDownlink(cb, thin);
    const t1 = Date.now();
    const low = await waitLayer('l', 20_000, `Bob to decode Ann's low layer with ${thin} kbit/s down`);
    const downMs = Date.now() - t1;
    console.log(`# shaped to ${thin} kbit/s: Bob decodes Ann's l (${low.got.w}x${low.got.h}) after ${downMs} ms`);
    const before = low.got.decoded;
    await waitFor(async () => ((await sample()).got?.decoded ?? 0) > before + 5, { timeout: 10_000, what: 'frames to go on decoding on the low layer' });

    net.unshapeDownlink(cb);
    const t2 = Date.now();
    const back = await waitLayer('h', 45_000, 'Bob to climb back to Ann\'s high layer once the shaping is gone');
    const upMs = Date.now() - t2;
    console.log(`# shaping removed: Bob decodes Ann's h (${back.got.w}x${back.got.h}) again after ${upMs} ms`);
    mark('done');
  } finally {
    net.unshapeDownlink(cb);
    await Promise.allSettled(browsers.map((b) => b.close()));
    net.downClients();
  }
}));
