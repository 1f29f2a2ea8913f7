// The call controls stay usable while the "You are offline" banner shows (a person whose
// Wi-Fi drops must still be able to mute or hang up).

import { test } from 'node:test';
import { useFixture } from '../lib/fixture.mjs';
import { startCall, tid } from '../lib/app.mjs';
import { goOffline } from '../lib/browser.mjs';

const fx = useFixture({ name: 'h' });

// Regression: the banner once sat at bottom:0 over the control bar and took its clicks.
test('the offline banner does not cover the call controls', { timeout: 150_000 }, async () => {
  const people = [await fx.person('h-ann'), await fx.person('h-bob')];
  await startCall(fx.base, people, { waitVideo: false });
  const [ann] = people;
  await goOffline(ann.page);
  await ann.page.locator('[data-testid="offline-banner"]').waitFor({ state: 'visible' });
  for (const id of ['leave-button', 'mic-toggle', 'camera-toggle']) {
    // trial: every actionability check (including "receives the click") without clicking.
    await ann.page.locator(tid(id)).click({ trial: true, timeout: 5_000 });
  }
});
