// (b) Chat reaches everyone, a whisper only its target, and chat goes on after someone leaves.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import {
  startCall, sendChat, waitForChat, chatMessages, sleep, tid, waitForTiles, memberCountShows,
} from '../lib/app.mjs';

const fx = useFixture({ name: 'b' });

test('chat, whisper, and chat after a member leaves', { timeout: 150_000 }, async () => {
  const people = [await fx.person('b-ann'), await fx.person('b-bob'), await fx.person('b-cid')];
  const [ann, bob, cid] = people;
  const { ids } = await startCall(fx.base, people, { waitVideo: false });
  const [annId, bobId, cidId] = ids;

  const hello = `hello everyone ${Date.now()}`;
  await sendChat(ann.page, hello, '');
  for (const p of [bob, cid]) {
    const m = await waitForChat(p.page, hello);
    assert.equal(m.from, annId, `${p.label} sees Ann as the sender`);
    assert.equal(m.whisper, 'false', `${p.label}: a message to everyone is no whisper`);
  }

  const secret = `just for cid ${Date.now()}`;
  await sendChat(ann.page, secret, cidId);
  const w = await waitForChat(cid.page, secret);
  assert.equal(w.from, annId);
  assert.equal(w.whisper, 'true', 'the target sees it as a whisper');
  await sleep(3_000);
  assert.ok(!(await chatMessages(bob.page)).some((m) => m.text.includes(secret)), 'Bob never sees the whisper to Cid');

  await cid.page.locator(tid('leave-button')).click();
  for (const [p, other] of [[ann, bobId], [bob, annId]]) {
    const left = await waitForTiles(p.page, 1);
    assert.deepEqual(left, [other], `${p.label} keeps only the remaining member's tile`);
    await memberCountShows(p.page, 2);
  }
  const after = `still here ${Date.now()}`;
  await sendChat(bob.page, after, '');
  const m = await waitForChat(ann.page, after);
  assert.equal(m.from, bobId);
  const back = `yes ${Date.now()}`;
  await sendChat(ann.page, back, '');
  assert.equal((await waitForChat(bob.page, back)).from, annId);
});
