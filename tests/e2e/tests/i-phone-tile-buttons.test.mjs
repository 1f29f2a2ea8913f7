// On a phone, every remote tile's own buttons (fullscreen, picture-in-picture) can be pressed:
// the floating self-view must not sit on top of them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { OUT_DIR } from '../lib/paths.mjs';
import { useFixture } from '../lib/fixture.mjs';
import { PHONE } from '../lib/browser.mjs';
import { startCall, tid } from '../lib/app.mjs';

const fx = useFixture({ name: 'i' });

// Regression: the floating self-view once sat bottom-right over the last tile's buttons.
test('phone: the self-view does not cover a remote tile\'s buttons', { timeout: 150_000 }, async () => {
  const people = [await fx.person('i-phone', PHONE), await fx.person('i-bob'), await fx.person('i-cid')];
  await startCall(fx.base, people, { waitVideo: false });
  const tiles = people[0].page.locator(tid('remote-tile'));
  for (let i = 0; i < 2; i++) {
    // Whatever buttons the tile has (not part of the test contract): each must take a click.
    const buttons = tiles.nth(i).locator('button');
    for (let j = 0; j < (await buttons.count()); j++) {
      await buttons.nth(j).click({ trial: true, timeout: 5_000 });
    }
  }
});

// Regression: in a phone's two-column grid the five tile buttons squeezed the name to nothing,
// so nobody could tell who was who. The name must be readable (not cut to a few pixels).
test('phone: every remote tile shows its name', { timeout: 150_000 }, async () => {
  const people = [await fx.person('i-phone2', PHONE), await fx.person('i-dan'), await fx.person('i-eve'), await fx.person('i-fay')];
  await startCall(fx.base, people, { waitVideo: false });
  const tiles = people[0].page.locator(tid('remote-tile'));
  for (let i = 0; i < 3; i++) {
    const name = tiles.nth(i).locator('.tile-name');
    const { width, text, full } = await name.evaluate((el) => ({
      width: el.getBoundingClientRect().width, text: el.textContent.trim(), full: el.scrollWidth <= el.clientWidth,
    }));
    assert.ok(text.length > 0, `tile ${i} has a name`);
    assert.ok(width >= 48 && full, `tile ${i}: the name "${text}" is ${width}px wide${full ? '' : ', cut'}`);
  }
  await people[0].page.screenshot({ path: join(OUT_DIR, 'i-phone-names.png') });
});
