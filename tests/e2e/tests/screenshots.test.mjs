// Screenshots of the entry and call screens on a phone and a desktop, into tests/e2e/out/.

import { test } from 'node:test';
import { join as pathJoin } from 'node:path';
import { mkdirSync } from 'node:fs';
import { useFixture } from '../lib/fixture.mjs';
import { PHONE, DESKTOP } from '../lib/browser.mjs';
import assert from 'node:assert/strict';
import { startCall, tid, sleep, sendChat, waitForChat, waitFor } from '../lib/app.mjs';
import { OUT_DIR } from '../lib/paths.mjs';

const fx = useFixture({ name: 'shots' });
const shot = (page, name) => page.screenshot({ path: pathJoin(OUT_DIR, name), animations: 'disabled' });

test('entry and call screens, phone and desktop', { timeout: 150_000 }, async () => {
  mkdirSync(OUT_DIR, { recursive: true });
  const phone = await fx.person('shot-phone', PHONE);
  const desk = await fx.person('shot-desktop', DESKTOP);
  for (const [p, name] of [[phone, 'entry-phone.png'], [desk, 'entry-desktop.png']]) {
    await p.page.goto(`${fx.base}/`);
    await p.page.locator(tid('join-button')).waitFor({ state: 'visible' });
    await sleep(500);
    await shot(p.page, name);
  }
  const third = await fx.person('shot-third', DESKTOP);
  await startCall(fx.base, [desk, phone, third]);
  await sleep(1_000);
  await shot(phone.page, 'call-phone.png');
  await shot(desk.page, 'call-desktop.png');

  // On a phone the chat is a drawer behind chat-toggle; what is sent there arrives.
  assert.equal(await phone.page.locator(tid('chat-input')).isVisible(), false, 'phone: chat drawer closed at first');
  const hi = `from the phone ${Date.now()}`;
  await sendChat(phone.page, hi, '');
  await waitForChat(desk.page, hi);
  await waitForChat(third.page, hi);
  await shot(phone.page, 'chat-phone.png');

  // The open drawer leaves the call usable: at most ~60% of the height, and every tile still in
  // the grid keeps a picture taller than its name bar. The tile opening the drawer moved to
  // picture-in-picture (headless Chromium allows it) is out of the grid until the drawer closes.
  const vh = PHONE.viewport.height;
  const panel = await phone.page.locator(tid('chat-panel')).boundingBox();
  assert.ok(panel && panel.height <= vh * 0.62, `drawer takes ${panel?.height}px of ${vh}`);
  const boxes = async () => (await phone.page.locator(tid('remote-tile')).evaluateAll((els) =>
    els.map((e) => e.getBoundingClientRect()).filter((r) => r.height > 0).map((r) => r.height)));
  const inPip = () => phone.page.evaluate(() => !!document.pictureInPictureElement);
  await waitFor(async () => (await inPip()) && (await boxes()).length === 1,
    { what: 'one tile in picture-in-picture and out of the grid while the drawer is open' });
  const open = await boxes();
  for (const h of open) assert.ok(h >= 100, `tile ${h}px tall while the drawer is open`);
  await phone.page.locator(tid('chat-toggle')).click();
  await waitFor(async () => (await boxes()).length === 2, { what: 'both tiles back once the drawer closes' });
  assert.equal(await inPip(), false, 'PiP ended with the drawer');
});
