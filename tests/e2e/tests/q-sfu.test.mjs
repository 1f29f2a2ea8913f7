// (q) A big room: five people in one room with the SFU on (`sfu_from = 3`). The fourth crosses
// the threshold and the room's media moves to the SFU, make-before-break: the tiles that were
// playing never go dark (the longest gap between frames, from requestVideoFrameCallback, is
// measured and printed: the goal is under 2 s, recorded in BENCHMARKS.md; the test fails at 5 s,
// a switch that broke rather than one slowed by five Chromiums on two cores). Everyone then
// sees every other member's video through the SFU, at phone portrait, phone landscape and desktop
// (screenshots, not black); chat, a whisper and a small file still go over the data-only links; a
// shared screen shows up at the others; the media is end-to-end encrypted (the frame transform's
// counters); a member leaves and the tiles update; back at three the room is a mesh again.
// Small fake video (320x240 at 15 fps) spares the machine's two cores.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { useFixture } from '../lib/fixture.mjs';
import { DESKTOP, PHONE, shot } from '../lib/browser.mjs';
import {
  control, ensureChatOpen, joinByLink, linkHash, pickRandomRoom, join, sendChat, sessionIds, tid, tileBrightness,
  waitFor, waitForChat, waitForPlayingVideos, waitForTiles, chatMessages,
} from '../lib/app.mjs';

const fx = useFixture({ name: 'q', sfu: true, extraRooms: 'sfu_from = 3' });

/** Asks the fake camera for 320x240 at 15 fps whatever the app asks. */
function smallCamera() {
  const md = navigator.mediaDevices;
  const orig = md.getUserMedia.bind(md);
  md.getUserMedia = (c = {}) => orig(c.video ? { ...c, video: { ...(typeof c.video === 'object' ? c.video : {}), width: 320, height: 240, frameRate: 15 } } : c);
}

/** Starts recording, per remote tile, the longest time between two shown frames (and since the last one). */
function watchFrames(page) {
  return page.evaluate(() => {
    const w = (window.__frameGaps = { gaps: {} });
    for (const tile of document.querySelectorAll('[data-testid="remote-tile"]')) {
      const id = tile.getAttribute('data-peer-id');
      const v = tile.querySelector('video');
      if (!v) continue;
      const g = (w.gaps[id] = { last: performance.now(), max: 0 });
      const on = () => {
        const now = performance.now();
        g.max = Math.max(g.max, now - g.last);
        g.last = now;
        if (!w.stopped) v.requestVideoFrameCallback(on);
      };
      v.requestVideoFrameCallback(on);
    }
  });
}

/** The longest gap per tile so far, counting the one still open. */
function frameGaps(page) {
  return page.evaluate(() => {
    const now = performance.now();
    const out = {};
    for (const [id, g] of Object.entries(window.__frameGaps?.gaps ?? {})) out[id] = Math.round(Math.max(g.max, now - g.last));
    return out;
  });
}

const viaSfu = (page, n) => waitFor(async () => {
  const via = await page.locator(tid('remote-tile')).evaluateAll((els) => els.map((e) => e.getAttribute('data-via')));
  return via.length === n && via.every((v) => v === 'sfu') ? via : null;
}, { timeout: 45_000, what: `${n} tiles shown through the SFU` });

test('five people cross the SFU threshold: video everywhere, no long freeze, chat/whisper/file/screen, E2EE, leave', { timeout: 180_000 }, async () => {
  const devices = [
    ['q-ann', PHONE],
    ['q-bob', { ...PHONE, viewport: { width: 844, height: 390 }, deviceScaleFactor: 2 }],
    ['q-cid', DESKTOP],
    ['q-dan', DESKTOP],
    ['q-eve', DESKTOP],
  ];
  const people = [];
  for (const [label, device] of devices) {
    const p = await fx.person(label, device);
    await p.context.addInitScript(smallCamera);
    people.push(p);
  }
  const [ann, bob, cid, dan, eve] = people;

  // Three in a mesh.
  const room = await pickRandomRoom(ann.page, fx.base);
  await join(ann.page, 'Ann');
  const hash = linkHash(ann.page);
  assert.ok(hash.length > 1, 'a dice room has a room key');
  await joinByLink(bob.page, fx.base, room, 'Bob', '', hash);
  await joinByLink(cid.page, fx.base, room, 'Cid', '', hash);
  const first = [ann, bob, cid];
  await Promise.all(first.map((p) => waitForPlayingVideos(p.page, 2)));
  for (const p of first) assert.equal(await p.page.locator(tid('trust-summary')).getAttribute('data-mode'), 'mesh');

  // The fourth crosses the threshold: the switch is measured on the tiles already playing.
  await Promise.all(first.map((p) => watchFrames(p.page)));
  const t0 = Date.now();
  await joinByLink(dan.page, fx.base, room, 'Dan', '', hash);
  await Promise.all(first.map((p) => viaSfu(p.page, 3)));
  console.log(`# all of the first three see the others through the SFU after ${Date.now() - t0} ms`);
  await joinByLink(eve.page, fx.base, room, 'Eve', '', hash);
  await Promise.all(people.map((p) => waitForTiles(p.page, 4)));
  await Promise.all(people.map((p) => viaSfu(p.page, 4)));
  await Promise.all(people.map((p) => waitForPlayingVideos(p.page, 4, 60_000)));
  const gaps = await Promise.all(first.map((p) => frameGaps(p.page)));
  const worst = Math.max(...gaps.flatMap((g) => Object.values(g)));
  console.log(`# longest frozen tile across the mesh-to-SFU switch: ${worst} ms (${JSON.stringify(gaps)})`);
  // A bound, not a timing: 5 Chromiums load two cores to a load average of ~16, and the gap
  // measured on one machine went from 1.7 to 2.4 s with nothing changed (BENCHMARKS.md).
  assert.ok(worst < 5000, `a tile showed no new frame for ${worst} ms across the switch`);
  for (const p of people) {
    assert.equal(await p.page.locator(tid('trust-summary')).getAttribute('data-mode'), 'sfu', `${p.label} is in SFU mode`);
  }
  const ids = await sessionIds(people.map((p) => p.page));

  // Not black, at every size.
  for (const [p, name] of [[ann, 'q-sfu-phone-portrait'], [bob, 'q-sfu-phone-landscape'], [cid, 'q-sfu-desktop']]) {
    await shot(p.page, name);
    for (const id of ids.filter((x) => x !== ids[people.indexOf(p)])) {
      const b = await tileBrightness(p.page, id);
      assert.ok(b > 15, `${p.label}: the tile of ${id} is black (${b.toFixed(1)})`);
    }
  }

  // End to end: frames are encrypted and decrypted with the room key, hardly any dropped.
  for (const p of people) {
    const frames = await waitFor(async () => {
      const f = await p.page.locator(tid('trust-summary')).getAttribute('data-frames');
      const [e, d] = (f ?? '0/0/0').split('/').map(Number);
      return e > 0 && d > 0 ? f : null;
    }, { timeout: 10_000, what: `${p.label}'s frame counters` });
    assert.equal(await p.page.locator(tid('trust-summary')).getAttribute('data-trust'), 'verified', `${p.label} says the media is E2EE`);
    console.log(`# ${p.label} frames encrypted/decrypted/dropped: ${frames}`);
  }

  // Chat, a whisper, a small file: over the data-only links.
  await sendChat(cid.page, 'hello big room');
  await Promise.all(people.filter((p) => p !== cid).map((p) => waitForChat(p.page, 'hello big room')));
  await sendChat(dan.page, 'psst eve', ids[4]);
  await waitForChat(eve.page, 'psst eve');
  for (const p of [ann, bob, cid]) {
    assert.ok(!(await chatMessages(p.page)).some((m) => m.text.includes('psst eve')), `${p.label} does not see the whisper`);
  }
  const dir = mkdtempSync(joinPath(tmpdir(), 'peerbox-e2e-q-'));
  try {
    const name = `small-${Date.now()}.txt`;
    writeFileSync(joinPath(dir, name), 'a small file in a big room\n'.repeat(100));
    await ensureChatOpen(cid.page);
    const target = cid.page.locator(tid('chat-target'));
    if (await target.count()) await target.selectOption('');
    await cid.page.locator(tid('file-input')).setInputFiles(joinPath(dir, name));
    await eve.page.locator(`${tid('file-download')}[data-name="${name}"]`).waitFor({ state: 'visible', timeout: 30_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  // A shared screen shows up at the others: a screen tile of its own, or (a server without a
  // screen m-line) in place of the sharer's camera, which says it shares.
  await control(dan.page, 'screen-share');
  await waitFor(async () => {
    const tile = await eve.page.locator(`${tid('screen-tile')}[data-peer-id="${ids[3]}"]`).count();
    const badge = await eve.page.locator(`${tid('remote-tile')}[data-peer-id="${ids[3]}"]`).getAttribute('data-sharing');
    return tile > 0 || badge === 'true';
  }, { timeout: 20_000, what: 'Dan\'s screen at Eve' });
  await waitForPlayingVideos(eve.page, 4, 30_000, [ids[3]]);
  await shot(eve.page, 'q-sfu-screen');
  await control(dan.page, 'screen-share');

  // Eve leaves: everyone else's tiles update, still through the SFU.
  await eve.page.locator(tid('leave-button')).click();
  await Promise.all([ann, bob, cid, dan].map((p) => waitForTiles(p.page, 3)));
  await Promise.all([ann, bob, cid, dan].map((p) => waitForPlayingVideos(p.page, 3, 30_000)));

  // Dan leaves too: three again, a mesh, and the videos go on.
  await dan.page.locator(tid('leave-button')).click();
  await Promise.all(first.map((p) => waitFor(async () =>
    (await p.page.locator(tid('trust-summary')).getAttribute('data-mode')) === 'mesh', { timeout: 30_000, what: `${p.label} back to mesh` })));
  await Promise.all(first.map((p) => waitForPlayingVideos(p.page, 2, 30_000)));
  await Promise.all(first.map((p) => waitFor(async () => {
    const via = await p.page.locator(tid('remote-tile')).evaluateAll((els) => els.map((e) => e.getAttribute('data-via')));
    return via.length === 2 && via.every((v) => v === 'mesh');
  }, { timeout: 20_000, what: `${p.label}'s tiles back on the mesh` })));
});
