// On a phone, every remote tile's own buttons (fullscreen, picture-in-picture) can be pressed:
// the floating self-view must not sit on top of them.

import { test } from 'node:test';
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
