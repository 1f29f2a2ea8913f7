// (u) A big room in the browser: two Chromiums (a desktop and a phone) and a crowd of load-client
// members (src/bin/loadgen `--sfu`, each publishing a pre-encoded VP8 file in three simulcast layers,
// end-to-end encrypted with the room key as the app does: loadgen/e2ee.rs) fill one SFU room to
// BIG_ROOM_SIZE (default 25) members. The speaker layout holds at that size: the Chromium that sends
// audio takes the big tile; a pinned member's big tile plays the high layer (>= 640 wide); strip tiles
// on screen play a low one (<= 320 wide at a desktop's 1x); tiles scrolled out of the strip receive
// nothing; scrolling the strip brings a tile's video back; at phone portrait, phone landscape and
// desktop no visible tile is black and the strip covers neither the controls nor the chat.
// The load members show no one (`--hidden-views`), so the machine only forwards what browsers watch.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join as joinPath } from 'node:path';
import { useFixture } from '../lib/fixture.mjs';
import { binaryPath } from '../lib/server.mjs';
import { OUT_DIR } from '../lib/paths.mjs';
import { DESKTOP, PHONE, shot } from '../lib/browser.mjs';
import { control, joinByLink, linkHash, pickRandomRoom, join, sleep, tid, tileBrightness, waitFor } from '../lib/app.mjs';

const SIZE = Number(process.env.BIG_ROOM_SIZE ?? 25);
const BROWSERS = 2;
/** The load generator is built beside peerbox (`cargo build --release --bins`). */
const LOADGEN = process.env.LOADGEN_BIN ?? joinPath(dirname(binaryPath()), 'loadgen');

const fx = useFixture({
  name: 'u',
  sfu: true,
  // Every load member logs in from 127.0.0.1: the per-address allowances are for households.
  extraRooms: [
    'sfu_from = 3', 'credential_burst = 1000', 'credentials_per_minute = 1000', 'max_connections_per_ip = 500',
    'ip_messages_per_second = 20000', 'ip_message_burst = 50000', 'ip_bytes_per_second = 67108864', 'ip_byte_burst = 67108864',
  ].join('\n'),
  extraSfu: `max_room_members = ${SIZE + 5}`,
});

/** Asks the fake camera for 320x240 at 15 fps whatever the app asks (spares the two cores). */
function smallCamera() {
  const md = navigator.mediaDevices;
  const orig = md.getUserMedia.bind(md);
  md.getUserMedia = (c = {}) => orig(c.video ? { ...c, video: { ...(typeof c.video === 'object' ? c.video : {}), width: 320, height: 240, frameRate: 15 } } : c);
}

/** Three VP8 layers of one test picture (h 640x360, m 320x180, l 160x90) at 15 fps, a key frame every 2 s. */
function makeMedia(dir) {
  const files = {};
  for (const [rid, size, kbps] of [['h', '640x360', 250], ['m', '320x180', 80], ['l', '160x90', 40]]) {
    files[rid] = joinPath(dir, `${rid}.ivf`);
    execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=size=${size}:rate=15`, '-c:v', 'libvpx',
      '-b:v', `${kbps}k`, '-g', '30', '-deadline', 'realtime', '-t', '8', files[rid]], { timeout: 60_000 });
  }
  return files;
}

/**
 * Every remote camera tile of the page: its name, whether it is the big one, whether any of it is
 * inside the strip's and the window's box (what the person sees), and its video's inbound-rtp
 * (frameWidth, bytesReceived, framesDecoded), found through the transceiver of the track it shows
 * (the SFU's tracks may share one track id in their msid: the mid tells them apart).
 */
function tiles(page) {
  return page.evaluate(async () => {
    const inbound = new Map();
    for (const pc of window.__pcs ?? []) {
      if (pc.connectionState === 'closed') continue;
      const byMid = new Map();
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video' && s.mid) byMid.set(s.mid, s);
      });
      for (const t of pc.getTransceivers()) {
        if (t.mid && byMid.has(t.mid)) inbound.set(t.receiver.track, byMid.get(t.mid));
      }
    }
    const strip = document.querySelector('[data-testid="stage-grid"]').getBoundingClientRect();
    const inside = (r, b) => r.right > b.left && r.left < b.right && r.bottom > b.top && r.top < b.bottom;
    const screen = { left: 0, top: 0, right: innerWidth, bottom: innerHeight };
    return [...document.querySelectorAll('[data-testid="remote-tile"]')].map((t) => {
      const r = t.getBoundingClientRect();
      const featured = t.classList.contains('featured');
      const track = t.querySelector('video')?.srcObject?.getVideoTracks?.()[0];
      const s = track ? inbound.get(track) : undefined;
      return {
        id: t.getAttribute('data-peer-id'),
        name: t.querySelector('.tile-name')?.textContent?.trim() ?? '',
        featured,
        shown: inside(r, screen) && (featured || inside(r, strip)),
        cover: !!t.querySelector('[data-testid="tile-initial"]'),
        width: s?.frameWidth ?? 0,
        bytes: s?.bytesReceived ?? 0,
        frames: s?.framesDecoded ?? 0,
      };
    });
  });
}

const byId = (list) => Object.fromEntries(list.map((t) => [t.id, t]));

/** Waits until `check(tile now, tile 1.5 s before)` holds for the tile(s) `pick` names. */
function waitTiles(page, what, pick, check, timeout = 30_000) {
  return waitFor(async () => {
    const a = byId(await tiles(page));
    await sleep(1_500);
    const b = await tiles(page);
    const chosen = b.filter((t) => pick(t, b) && a[t.id]);
    if (!chosen.length) return null;
    const bad = chosen.filter((t) => !check(t, a[t.id]));
    if (bad.length) throw new Error(`${what}: ${JSON.stringify(bad.map((t) => [t.name, t.shown ? 'shown' : 'hidden', t.width, t.bytes - a[t.id].bytes, t.frames - a[t.id].frames]))}`);
    return chosen;
  }, { timeout, interval: 500, what });
}

/**
 * What a person sees is whole: the big tile and the strip are inside the window (a strip that
 * scrolls must not widen the page) and overlap neither each other, the controls nor the side panel.
 */
async function assertNothingCovered(page, label) {
  const boxes = await page.evaluate(() => {
    const box = (sel) => document.querySelector(sel)?.getBoundingClientRect().toJSON() ?? null;
    return {
      featured: box('.grid.speaker > .tile.featured'), strip: box('[data-testid="stage-grid"]'), controls: box('.controls'), side: box('.side'),
      window: { width: innerWidth, height: innerHeight, scrollWidth: document.documentElement.scrollWidth },
    };
  });
  assert.ok(boxes.window.scrollWidth <= boxes.window.width + 1, `${label}: the page is wider than the window ${JSON.stringify(boxes)}`);
  for (const k of ['featured', 'strip']) {
    const b = boxes[k];
    assert.ok(b && b.left >= -1 && b.right <= boxes.window.width + 1 && b.bottom <= boxes.window.height + 1, `${label}: the ${k} is cut by the window ${JSON.stringify(boxes)}`);
  }
  const overlap = (a, b) => !!a && !!b && a.width > 0 && b.width > 0 && a.right > b.left + 1 && a.left < b.right - 1 && a.bottom > b.top + 1 && a.top < b.bottom - 1;
  assert.ok(boxes.featured && boxes.strip, `${label}: a big tile and a strip`);
  assert.ok(!overlap(boxes.featured, boxes.strip), `${label}: the big tile covers the strip ${JSON.stringify(boxes)}`);
  for (const k of ['featured', 'strip']) {
    assert.ok(!overlap(boxes[k], boxes.controls), `${label}: the ${k} covers the controls ${JSON.stringify(boxes)}`);
    assert.ok(!overlap(boxes[k], boxes.side), `${label}: the ${k} covers the chat ${JSON.stringify(boxes)}`);
  }
}

/** Every remote tile the person sees that shows a picture (no initial) is not black. */
async function assertNoBlackTiles(page, label) {
  const seen = (await tiles(page)).filter((t) => t.shown);
  assert.ok(seen.length >= 2, `${label}: at least the big tile and a strip tile are seen (${seen.length})`);
  for (const t of seen.filter((x) => !x.cover)) {
    const b = await tileBrightness(page, t.id);
    assert.ok(b > 15, `${label}: the tile of ${t.name} is black (${b.toFixed(1)})`);
  }
}

test(`a room of ${SIZE}: speaker and pinned big tile at a high layer, the strip low, off-screen tiles paused, scrolling brings video back`, { timeout: 180_000 }, async () => {
  assert.ok(existsSync(LOADGEN), `no load generator at ${LOADGEN}: build it with \`cargo build --release --bins\` (or set LOADGEN_BIN)`);
  const dir = mkdtempSync(joinPath(tmpdir(), 'peerbox-e2e-u-'));
  let load = null;
  try {
    const media = makeMedia(dir);
    const ann = await fx.person('u-ann', { viewport: { width: 1280, height: 800 } });
    const bea = await fx.person('u-bea', PHONE);
    for (const p of [ann, bea]) await p.context.addInitScript(smallCamera);

    const room = await pickRandomRoom(ann.page, fx.base);
    await join(ann.page, 'Ann');
    // Ann listens: only Bea's audio makes a speaker.
    await control(ann.page, 'mic-toggle');
    const hash = linkHash(ann.page);
    await joinByLink(bea.page, fx.base, room, 'Bea', '', hash);

    // The crowd: end-to-end encrypted with the key of Ann's link.
    const crowd = SIZE - BROWSERS;
    const log = createWriteStream(joinPath(OUT_DIR, 'u-loadgen.log'));
    load = spawn(LOADGEN, [
      '--url', `wss://127.0.0.1:${fx.server.httpsPort}/`, '--insecure', '--sfu', String(crowd), `--room=${room}`,
      `--room-key=${hash.slice(1)}`, '--media', media.h, '--simulcast', `${media.m},${media.l}`, '--hidden-views',
      '--join-gap-ms', '100', '--duration', '600',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    load.stdout.pipe(log);
    load.stderr.pipe(log);
    const t0 = Date.now();
    await waitFor(async () => (await ann.page.locator(tid('remote-tile')).count()) === SIZE - 1 ? true : null,
      { timeout: 60_000, what: `Ann to show ${SIZE - 1} remote tiles` });
    assert.equal(await ann.page.locator(tid('stage-grid')).getAttribute('data-layout'), 'speaker');
    console.log(`# ${SIZE - 1} tiles at Ann ${Date.now() - t0} ms after the crowd started`);

    // The Chromium with audio takes the big tile.
    await waitFor(async () => (await tiles(ann.page)).find((t) => t.featured)?.name === 'Bea' ? true : null,
      { timeout: 30_000, what: 'Bea (the one speaking) on Ann\'s big tile' });

    // The strip on screen plays small layers (a desktop at 1x: tiles ~240 px wide ask for m, 320 wide);
    // off-screen tiles get nothing.
    const visible = await waitTiles(ann.page, 'strip tiles on screen playing a low layer',
      (t) => t.shown && !t.featured && t.name.startsWith('load'),
      (t, before) => t.frames > before.frames && t.width > 0 && t.width <= 320, 45_000);
    console.log(`# Ann sees ${visible.length} strip tiles playing, widths ${visible.map((t) => t.width).join(',')}`);
    const hidden = await waitTiles(ann.page, 'off-screen tiles receiving nothing',
      (t) => !t.shown && !t.featured,
      (t, before) => t.bytes === before.bytes, 20_000);
    console.log(`# ${hidden.length} tiles off screen receive nothing`);
    assert.ok(hidden.length >= SIZE - 1 - visible.length - 2, `most tiles are off screen (${hidden.length})`);

    // A pin: that member's big tile plays the high layer.
    const pick = visible[0];
    await ann.page.locator(`${tid('remote-tile')}[data-peer-id="${pick.id}"] ${tid('tile-pin')}`).click();
    await waitTiles(ann.page, `${pick.name}, pinned, on the big tile at the high layer`,
      (t) => t.id === pick.id,
      (t, before) => t.featured && t.frames > before.frames && t.width >= 640, 45_000);

    // Scrolling the strip to its end brings the last tiles' video back.
    const last = (await tiles(ann.page)).filter((t) => !t.shown && !t.featured).at(-1);
    assert.ok(last, 'a tile off screen to scroll to');
    await ann.page.locator(tid('stage-grid')).evaluate((g) => g.scrollTo({ top: g.scrollHeight, left: g.scrollWidth }));
    await waitTiles(ann.page, `${last.name} playing once scrolled to`,
      (t) => t.id === last.id,
      (t, before) => t.shown && t.frames > before.frames && t.bytes > before.bytes, 30_000);

    // What people see, at three sizes: no black tile, nothing covered.
    await assertNothingCovered(ann.page, 'desktop');
    await assertNoBlackTiles(ann.page, 'desktop');
    await shot(ann.page, 'u-big-room-desktop');
    await waitTiles(bea.page, 'Bea\'s strip playing', (t) => t.shown && !t.featured, (t, before) => t.frames > before.frames, 45_000);
    await assertNothingCovered(bea.page, 'phone portrait');
    await assertNoBlackTiles(bea.page, 'phone portrait');
    await shot(bea.page, 'u-big-room-phone-portrait');
    await bea.page.setViewportSize({ width: 844, height: 390 });
    await waitTiles(bea.page, 'Bea\'s strip playing in landscape', (t) => t.shown && !t.featured, (t, before) => t.frames > before.frames, 30_000);
    await assertNothingCovered(bea.page, 'phone landscape');
    await assertNoBlackTiles(bea.page, 'phone landscape');
    await shot(bea.page, 'u-big-room-phone-landscape');
  } finally {
    if (load && load.exitCode === null) load.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});
