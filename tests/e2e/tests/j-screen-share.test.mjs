// Screen sharing: the others get the shared screen as a tile of its own, marked as the sharer's
// screen, playing, with its sound where the browser captures it, while the sharer's camera tile
// keeps showing the camera; stopping the share removes the screen tile.
//
// Headless Chromium here captures without a picker: --use-fake-ui-for-media-stream (already in
// lib/browser.mjs) makes getDisplayMedia() return a fake screen (`screen:…`, the window's size,
// 1366x768 here) and, when audio is asked for, a fake audio track. That fake screen is drawn by
// the same generator as the fake camera (green, a turning arc, a frame counter): mean colours are
// the same, so this test tells the pictures apart by shape: the camera is 640x480 (4:3), the
// screen 16:9, on the other person's decoded videos. Together with data-sharing and frames that
// keep advancing, that follows the app's real path: getDisplayMedia, a second stream on every
// peer connection, the state message naming it, and the other person's decoder.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { startCall, tid, waitFor, remoteVideoStats, sleep, control } from '../lib/app.mjs';

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

const screenStats = async (page, id) => {
  const v = page.locator(`${tid('screen-tile')}[data-peer-id="${id}"] video`);
  if (!(await v.count())) return null;
  return v.evaluate((el) => ({
    w: el.videoWidth, h: el.videoHeight, frames: el.getVideoPlaybackQuality().totalVideoFrames,
    audio: el.srcObject?.getAudioTracks().length ?? 0,
  }));
};

test('a shared screen arrives as its own tile next to the camera, and goes away when sharing stops', { timeout: 150_000 }, async () => {
  const people = [await fx.person('j-ann'), await fx.person('j-bob')];
  const { ids } = await startCall(fx.base, people);
  const [ann, bob] = people;
  const annId = ids[0];

  const cameraStats = await keepsPlaying(bob.page, annId);
  const camera = cameraStats.w / cameraStats.h;
  assert.equal(await sharingAttr(bob.page, annId), 'false', 'not sharing at first');

  await control(ann.page, 'screen-share');
  await waitFor(async () => (await ann.page.locator(tid('screen-share')).getAttribute('aria-pressed')) === 'true', {
    what: 'the share button to show it is on',
  });
  const captured = await ann.page.locator(tid('local-screen')).evaluate((v) => ({
    ...v.srcObject.getVideoTracks()[0].getSettings(), audio: v.srcObject.getAudioTracks().length,
  }));
  const screen = captured.width / captured.height;
  assert.ok(!near(screen, camera), `the screen (${captured.width}x${captured.height}) is shaped unlike the camera (${cameraStats.w}x${cameraStats.h})`);
  await waitFor(async () => (await sharingAttr(bob.page, annId)) === 'true', { what: "bob's tile of ann to say sharing" });
  const first = await waitFor(async () => {
    const s = await screenStats(bob.page, annId);
    return s && s.w && near(s.w / s.h, screen) ? s : null;
  }, { what: 'bob to decode the screen in a tile of its own' });
  await sleep(1_500);
  const later = await screenStats(bob.page, annId);
  assert.ok(later.frames > first.frames, `the screen keeps playing (${first.frames} -> ${later.frames} frames)`);
  if (captured.audio) assert.equal(later.audio, 1, "the screen's sound comes with it");
  // The camera did not make way for the screen: Ann's camera tile still plays the 4:3 camera.
  const cam = await keepsPlaying(bob.page, annId);
  assert.ok(near(cam.w / cam.h, camera), `the camera tile still shows the camera (${cam.w}x${cam.h})`);
  console.log(`# camera ${cameraStats.w}x${cameraStats.h}, shared screen ${captured.width}x${captured.height} ` +
    `decoded as ${later.w}x${later.h}, screen audio tracks captured ${captured.audio} / received ${later.audio}`);

  await control(ann.page, 'screen-share');
  await waitFor(async () => (await sharingAttr(bob.page, annId)) === 'false', { what: 'sharing to end on bob\'s tile' });
  await waitFor(async () => (await bob.page.locator(tid('screen-tile')).count()) === 0, { what: 'the screen tile to go' });
  await keepsPlaying(bob.page, annId);
});
