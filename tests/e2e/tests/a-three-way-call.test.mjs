// (a) Three people join one random room through the UI and see each other's video.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { startCall, memberCountShows, tileIds } from '../lib/app.mjs';

const fx = useFixture({ name: 'a' });

test('three people in a random room each see two playing remote videos and a count of 3', { timeout: 150_000 }, async () => {
  const people = [await fx.person('a-ann'), await fx.person('a-bob'), await fx.person('a-cid')];
  const { ids } = await startCall(fx.base, people);
  assert.equal(new Set(ids).size, 3, 'three distinct session ids');
  for (const [i, p] of people.entries()) {
    const seen = await tileIds(p.page);
    assert.deepEqual(new Set(seen), new Set(ids.filter((_, j) => j !== i)), `${p.label} sees the two others`);
    await memberCountShows(p.page, 3);
  }
});
