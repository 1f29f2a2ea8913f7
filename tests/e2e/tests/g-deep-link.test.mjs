// (g) The original app's deep link /?roomrequest=<uuid> fills and locks the room field.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { useFixture } from '../lib/fixture.mjs';
import { join, tid, waitForPlayingVideos, memberCountShows } from '../lib/app.mjs';

const fx = useFixture({ name: 'g' });

test('/?roomrequest=<uuid> prefills and locks the room, and two people connect', { timeout: 150_000 }, async () => {
  const room = randomUUID();
  const people = [await fx.person('g-ann'), await fx.person('g-bob')];
  for (const p of people) {
    await p.page.goto(`${fx.base}/?roomrequest=${room}`);
    const input = p.page.locator(tid('room-input'));
    await input.waitFor({ state: 'visible' });
    assert.equal(await input.inputValue(), room, `${p.label}: room field filled from the link`);
    assert.equal(await input.isEditable(), false, `${p.label}: room field locked`);
    await join(p.page, p.label);
  }
  for (const p of people) {
    await waitForPlayingVideos(p.page, 1);
    await memberCountShows(p.page, 2);
  }
});
