// What a person sees at the sizes people use (issue 10's blockers): a shared screen shows its
// whole picture on a phone in portrait, landscape and a small phone, and on a laptop at 200 %
// zoom; camera tiles crop at most a little; a tile in full screen shows all of it; a tap on a
// tile does not go full screen; and in the phone chat drawer a tap on the message box hits the
// message box at every height. Screenshots of each size go to out/ (k-*.png).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { DESKTOP, DESKTOP_200, PHONE, withoutDevices, shot as screenshot } from '../lib/browser.mjs';
import { startCall, tid, waitFor, sleep, control, videoVisibility, tapHits, ensureChatOpen } from '../lib/app.mjs';

const fx = useFixture({ name: 'k' });
// Every check of a size is made and reported together, so one run names everything that is off.
let problems = [];
const check = (ok, what) => { if (!ok) problems.push(what); };
const shot = (page, name) => screenshot(page, `k-${name}`);

/** The <video> showing `id`'s screen: its own tile (or, where the screen replaced the camera, that tile). */
const screenVideo = (page, id) =>
  page.locator(`${tid('screen-tile')}[data-peer-id="${id}"] video, ${tid('remote-tile')}[data-peer-id="${id}"][data-sharing="true"] video`).first();
/** Camera tiles' videos (a 16:9 picture in a camera tile is a screen that replaced the camera: skipped). */
async function cameraShapes(page) {
  const vids = page.locator(`${tid('remote-tile')} video`);
  const out = [];
  for (let i = 0; i < (await vids.count()); i++) {
    const c = await videoVisibility(vids.nth(i));
    if (c.vw && Math.abs(c.vw / c.vh - 16 / 9) > 0.05) out.push(c);
  }
  return out;
}

/** Whole screen visible; every camera tile keeps at least 74 % of each side (4:3 in 16:9). */
async function checkPictures(page, annId, where) {
  const screen = screenVideo(page, annId);
  const s = await waitFor(async () => {
    const v = await videoVisibility(screen);
    return v.vw > 0 && Math.abs(v.vw / v.vh - 16 / 9) < 0.05 ? v : null;
  }, { what: `${where}: Ann's screen decoded (16:9)` });
  check(s.w > 0.99 && s.h > 0.99, `${where}: the shared screen is shown whole (${JSON.stringify(s)})`);
  for (const c of await cameraShapes(page)) {
    check(c.w >= 0.74 && c.h >= 0.74, `${where}: a camera tile keeps most of its picture (${JSON.stringify(c)})`);
  }
}

/**
 * The drawer's form takes taps and is not covered, with a toast showing: `other` raises a hand
 * (a toast at everyone's for 6 s) while the drawer is open, as someone joining or leaving would.
 */
async function checkChatDrawer(person, where, other) {
  const { page } = person;
  await ensureChatOpen(page);
  await control(other.page, 'raise-hand');
  const toast = page.locator(`${tid('toast')}[data-kind="hand"]`).last();
  await toast.waitFor({ state: 'visible', timeout: 10_000 });
  await sleep(300);
  const box = await toast.boundingBox();
  for (const id of ['chat-input', 'chat-target']) {
    const hit = await tapHits(page.locator(tid(id)));
    check(hit.ok, `${where}: a tap on ${id} hits it, not ${hit.hit}`);
    const el = await page.locator(tid(id)).boundingBox();
    const overlaps = box && el && box.x < el.x + el.width && el.x < box.x + box.width && box.y < el.y + el.height && el.y < box.y + box.height;
    check(!overlaps, `${where}: the toast (${JSON.stringify(box)}) covers ${id} (${JSON.stringify(el)})`);
  }
  await shot(page, `${person.label.slice(2)}-${where}-chat`);
  await control(other.page, 'raise-hand');
  const close = page.locator(tid('drawer-close'));
  if (await close.isVisible()) await close.click();
}

test('shared screens and enlarged tiles show the whole picture; the drawer chat takes taps at every size', { timeout: 420_000 }, async () => {
  problems = [];
  const ann = await fx.person('k-ann', DESKTOP);
  const pat = await fx.person('k-pat', PHONE);
  // The 200 % laptop sends nothing (no camera or mic): one browser for three people stays light.
  const zed = await withoutDevices(await fx.person('k-zed', DESKTOP_200));
  const { ids } = await startCall(fx.base, [ann, pat, zed], { silent: [zed] });
  const annId = ids[0];
  await control(ann.page, 'screen-share');

  for (const [name, width, height] of [['portrait', 390, 844], ['landscape', 844, 390], ['small', 360, 640]]) {
    await pat.page.setViewportSize({ width, height });
    await sleep(800);
    await checkPictures(pat.page, annId, `phone ${name}`);
    await shot(pat.page, `pat-${name}`);
    await checkChatDrawer(pat, name, ann);
  }
  await checkPictures(zed.page, annId, 'laptop at 200 %');
  await shot(zed.page, 'zed-200');
  await checkChatDrawer(zed, '200', ann);
  await shot(ann.page, 'ann-desktop');
  for (const c of await cameraShapes(ann.page)) {
    check(c.w >= 0.74 && c.h >= 0.74, `desktop: camera tiles crop at most a little (${JSON.stringify(c)})`);
  }

  // Phone portrait: a tap on Ann's camera tile does nothing; its full-screen button shows it whole.
  await pat.page.setViewportSize({ width: 390, height: 844 });
  await sleep(500);
  const annCam = pat.page.locator(`${tid('remote-tile')}[data-peer-id="${annId}"]`).first();
  await annCam.tap({ position: { x: 60, y: 60 } });
  await sleep(500);
  const fullNow = () => pat.page.evaluate(() => !!document.fullscreenElement);
  check(!(await fullNow()), 'a tap on a tile does not go full screen');
  if (await fullNow()) await pat.page.evaluate(() => document.exitFullscreen());
  await pat.page.locator(tid('tile-fullscreen')).first().waitFor();
  // The screen's own tile, or on older builds the camera tile that shows it.
  const screenTile = pat.page.locator(`${tid('screen-tile')}[data-peer-id="${annId}"], ${tid('remote-tile')}[data-peer-id="${annId}"][data-sharing="true"]`).first();
  await screenTile.locator(tid('tile-fullscreen')).tap();
  await waitFor(fullNow, { what: 'the screen tile in full screen' });
  await sleep(500);
  const full = await videoVisibility(screenVideo(pat.page, annId));
  check(full.w > 0.99 && full.h > 0.99, `full screen shows the whole screen (${JSON.stringify(full)})`);
  await shot(pat.page, 'pat-fullscreen');
  await pat.page.evaluate(() => document.exitFullscreen());
  await waitFor(async () => !(await fullNow()), { what: 'full screen to end' });
  await annCam.locator(tid('tile-fullscreen')).tap();
  await waitFor(fullNow, { what: 'the camera tile in full screen' });
  await sleep(500);
  const camFull = await videoVisibility(annCam.locator('video'));
  check(camFull.w > 0.99 && camFull.h > 0.99, `an enlarged camera tile shows its whole picture (${JSON.stringify(camFull)})`);
  await pat.page.evaluate(() => document.exitFullscreen());
  assert.deepEqual(problems, [], 'what a person would see wrong');
});
