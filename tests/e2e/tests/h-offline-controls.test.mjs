// While the network (or the server) is away the call goes on peer to peer, so the app says so
// quietly, in the call's header, covering nothing: the controls stay usable (a person whose Wi-Fi
// drops must still be able to mute or hang up) and the room's name stays readable.

import { test } from 'node:test';
import { useFixture } from '../lib/fixture.mjs';
import assert from 'node:assert/strict';
import { startCall, tid, tapHits } from '../lib/app.mjs';
import { goOffline, shot } from '../lib/browser.mjs';
import { OUT_DIR } from '../lib/paths.mjs';
import { join } from 'node:path';

const fx = useFixture({ name: 'h' });

// Regressions: the banner once sat at bottom:0 over the control bar and took its clicks; then it
// was a red "Cannot reach the server" banner laid over the header.
test('the offline notice is quiet and covers neither the controls nor the header', { timeout: 150_000 }, async () => {
  const people = [await fx.person('h-ann'), await fx.person('h-bob')];
  await startCall(fx.base, people, { waitVideo: false });
  const [ann] = people;
  await goOffline(ann.page);
  try {
    await ann.page.locator('[data-testid="offline-banner"]').waitFor({ state: 'visible', timeout: 15_000 });
  } catch (e) {
    // Post-mortem for a rare failure seen under load: what the page showed and believed.
    await ann.page.screenshot({ path: join(OUT_DIR, 'h-offline-failed.png') });
    const seen = await ann.page.evaluate(() => ({
      url: location.href, onLine: navigator.onLine, sockets: (window.__sockets ?? []).map((s) => s.readyState),
      text: document.body.innerText.slice(0, 300),
    }));
    throw new Error(`no offline banner: ${JSON.stringify(seen)}`, { cause: e });
  }
  const title = await tapHits(ann.page.locator('.room-title'));
  assert.ok(title.ok, `the room's name is not covered (a tap there hits ${title.hit})`);
  const role = await ann.page.locator('[data-testid="offline-banner"]').getAttribute('role');
  assert.equal(role, 'status', 'said as a status, not an alert');
  await shot(ann.page, 'h-offline');
  for (const id of ['leave-button', 'mic-toggle', 'camera-toggle']) {
    // trial: every actionability check (including "receives the click") without clicking.
    await ann.page.locator(tid(id)).click({ trial: true, timeout: 5_000 });
  }
});
