// (f) Muting and turning the camera off are seen (and heard) on the other side.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { startCall, tid, waitFor, tileBrightness, inboundStats, sleep } from '../lib/app.mjs';

const fx = useFixture({ name: 'f' });

async function audioEnergyDelta(page) {
  const sum = (s) => s.filter((e) => e.connectionState === 'connected').reduce((a, e) => a + e.audioEnergy, 0);
  const a = sum(await inboundStats(page));
  await sleep(2_000);
  return sum(await inboundStats(page)) - a;
}

test('mic off and camera off show on the remote tile; video goes dark, audio silent', { timeout: 150_000 }, async () => {
  const people = [await fx.person('f-ann'), await fx.person('f-bob')];
  const [ann, bob] = people;
  const { ids } = await startCall(fx.base, people);
  const annTile = bob.page.locator(`${tid('remote-tile')}[data-peer-id="${ids[0]}"]`);
  const lit = await tileBrightness(bob.page, ids[0]);
  assert.ok(lit > 30, `the fake camera picture is not black before (${lit})`);
  const loud = await audioEnergyDelta(bob.page);
  assert.ok(loud > 0, `Bob hears Ann's fake microphone before muting (energy +${loud})`);

  await ann.page.locator(tid('mic-toggle')).click();
  await waitFor(async () => (await annTile.getAttribute('data-mic')) === 'off', { what: 'data-mic="off" on Ann\'s tile at Bob' });
  await waitFor(async () => (await audioEnergyDelta(bob.page)) < loud / 100, { what: 'Ann\'s audio to go silent at Bob', interval: 0 });

  await ann.page.locator(tid('camera-toggle')).click();
  await waitFor(async () => (await annTile.getAttribute('data-cam')) === 'off', { what: 'data-cam="off" on Ann\'s tile at Bob' });
  await waitFor(async () => {
    const video = annTile.locator('video');
    if (!(await video.isVisible())) return 'hidden';
    return (await tileBrightness(bob.page, ids[0])) < 8;
  }, { what: 'Ann\'s video at Bob to go black or be hidden' });
});
