// Screen sharing: the others see the shared screen instead of the camera in that person's
// tile, marked as sharing, still playing; stopping the share brings the camera back.
//
// Headless Chromium here captures without a picker: --use-fake-ui-for-media-stream (already in
// lib/browser.mjs) makes getDisplayMedia() return a fake screen (`screen:…`, the window's size,
// 1366x768 here), so no --auto-select-desktop-capture-source flag is needed. That fake screen
// is drawn by the same generator as the fake camera (green, a turning arc, a frame counter):
// mean colours before and after are the same, so this test cannot tell the pictures apart by
// content. What differs, and what it checks, is the picture's shape: the camera is 640x480
// (4:3), the screen 16:9, on the other person's decoded video. Together with data-sharing and
// frames that keep advancing, that follows the app's real path: getDisplayMedia, replaceTrack,
// the state message, and the other person's decoder.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { startCall, tid, waitFor, remoteVideoStats, sleep } from '../lib/app.mjs';

const fx = useFixture({ name: 'j' });

/** Width / height of the picture `peerId`'s tile decodes. */
async function aspect(page, peerId) {
  const s = (await remoteVideoStats(page))[peerId];
  return s && s.h ? s.w / s.h : 0;
}
const near = (a, b) => Math.abs(a - b) < 0.05;

/** Frames of `peerId`'s tile advance over ~1.5 s; returns the later stats. */
async function keepsPlaying(page, peerId) {
  return waitFor(async () => {
    const a = (await remoteVideoStats(page))[peerId];
    await sleep(1_500);
    const b = (await remoteVideoStats(page))[peerId];
    return a && b && b.frames > a.frames && b.time > a.time && !b.paused ? b : null;
  }, { timeout: 20_000, what: `${peerId}'s video to keep playing` });
}

const sharingAttr = (page, id) =>
  page.locator(`${tid('remote-tile')}[data-peer-id="${id}"]`).getAttribute('data-sharing');

test('a shared screen replaces the camera on the other side, and the camera comes back', { timeout: 150_000 }, async () => {
  const people = [await fx.person('j-ann'), await fx.person('j-bob')];
  const { ids } = await startCall(fx.base, people);
  const [ann, bob] = people;
  const annId = ids[0];

  const cameraStats = await keepsPlaying(bob.page, annId);
  const camera = cameraStats.w / cameraStats.h;
  assert.equal(await sharingAttr(bob.page, annId), 'false', 'not sharing at first');

  await ann.page.locator(tid('screen-share')).click();
  await waitFor(async () => (await ann.page.locator(tid('screen-share')).getAttribute('aria-pressed')) === 'true', {
    what: 'the share button to show it is on',
  });
  const captured = await ann.page.locator(`${tid('local-video')}`).evaluate((v) => v.srcObject.getVideoTracks()[0].getSettings());
  const screen = captured.width / captured.height;
  assert.ok(!near(screen, camera), `the screen (${captured.width}x${captured.height}) is shaped unlike the camera (${cameraStats.w}x${cameraStats.h})`);
  await waitFor(async () => (await sharingAttr(bob.page, annId)) === 'true', { what: "bob's tile of ann to say sharing" });
  await waitFor(async () => near(await aspect(bob.page, annId), screen), { what: 'bob to decode the screen instead of the camera' });
  const screenStats = await keepsPlaying(bob.page, annId);
  console.log(`# camera ${cameraStats.w}x${cameraStats.h}, shared screen ${captured.width}x${captured.height} ` +
    `decoded as ${screenStats.w}x${screenStats.h}`);

  await ann.page.locator(tid('screen-share')).click();
  await waitFor(async () => (await sharingAttr(bob.page, annId)) === 'false', { what: 'sharing to end on bob\'s tile' });
  await waitFor(async () => near(await aspect(bob.page, annId), camera), { what: 'the camera picture to come back' });
  await keepsPlaying(bob.page, annId);
});
