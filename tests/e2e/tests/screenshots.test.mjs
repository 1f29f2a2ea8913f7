// Screenshots of the entry and call screens on a phone and a desktop, into tests/e2e/out/.

import { test } from 'node:test';
import { join as pathJoin } from 'node:path';
import { mkdirSync } from 'node:fs';
import { useFixture } from '../lib/fixture.mjs';
import { PHONE, DESKTOP } from '../lib/browser.mjs';
import assert from 'node:assert/strict';
import { startCall, tid, sleep, sendChat, waitForChat } from '../lib/app.mjs';
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
});
