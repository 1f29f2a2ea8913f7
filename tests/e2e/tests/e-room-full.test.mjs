// (e) A newcomer to a room at capacity is told the room is full, and is not stuck there: a new
// room is one tap away, even when they came by an invitation link (whose room field is locked).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { startCall, tid, join, waitFor, memberCountShows } from '../lib/app.mjs';

const fx = useFixture({ name: 'e', capacity: 2 });

test('the third person in a room of capacity 2 sees the room-full message', { timeout: 150_000 }, async () => {
  const people = [await fx.person('e-ann'), await fx.person('e-bob')];
  const { room } = await startCall(fx.base, people, { waitVideo: false });
  const cid = await fx.person('e-cid');
  await cid.page.goto(`${fx.base}/room/${room}`);
  await cid.page.locator(tid('join-button')).click();
  const banner = cid.page.locator(tid('error-banner'));
  await banner.waitFor({ state: 'visible', timeout: 30_000 });
  assert.equal(await banner.getAttribute('role'), 'alert');
  assert.match(await banner.innerText(), /full/i, 'the banner says the room is full');
  await cid.page.locator(tid('new-room')).click();
  const input = cid.page.locator(tid('room-input'));
  const fresh = await waitFor(async () => {
    const v = await input.inputValue();
    return /^[0-9a-f-]{36}$/.test(v) && v !== room ? v : null;
  }, { what: 'a new random room in an unlocked field' });
  assert.equal(await input.isEditable(), true, 'the room field is no longer locked');
  await join(cid.page, 'Cid');
  await memberCountShows(cid.page, 1);
  assert.ok(fresh);
});
