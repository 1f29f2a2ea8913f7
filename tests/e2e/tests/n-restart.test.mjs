// A server restart is invisible to a call (issue 10): two people in a call while peerbox is
// stopped (SIGTERM, as `systemctl restart` does) and started again on the same ports and ssl dir.
// While it is away the videos keep decoding peer to peer and the phone says so quietly; once it
// is back every member has its own session id again (resume tokens signed with the key in the ssl
// dir), nobody creates a peer connection or sends an offer, chat still flows, and a newcomer
// after the restart sees both and is seen by them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { DESKTOP, PHONE, shot } from '../lib/browser.mjs';
import {
  startCall, joinByLink, linkHash, remoteVideoStats, waitForPlayingVideos, tileIds, tid, waitFor, sleep, sendChat, waitForChat,
} from '../lib/app.mjs';

const fx = useFixture({ name: 'n' });
const QUIET_NOTICE = `.away[role="status"]:is(${tid('server-away')}, ${tid('offline-banner')})`;

/** Counts what a page sends from now on: every signalling message's type. */
function recordSends(page) {
  return page.evaluate(() => {
    window.__sentTypes = [];
    const orig = WebSocket.prototype.send;
    WebSocket.prototype.send = function send(data) {
      try { window.__sentTypes.push(JSON.parse(String(data)).type); } catch { window.__sentTypes.push('?'); }
      return orig.call(this, data);
    };
  });
}

const pcCount = (page) => page.evaluate(() => window.__pcs.length);
const sentTypes = (page) => page.evaluate(() => window.__sentTypes);
const pcStates = (page) => page.evaluate(() => window.__pcs.map((pc) => pc.connectionState));

test('a server restart is invisible: same ids, same peer connections, video never stops', { timeout: 240_000 }, async () => {
  const ann = await fx.person('n-ann', DESKTOP);
  const pat = await fx.person('n-pat', PHONE);
  const people = [ann, pat];
  const step = (what) => console.log(`# ${new Date().toISOString()} ${what}`);
  const { room, ids } = await startCall(fx.base, people);
  for (const p of people) await recordSends(p.page);
  const pcsBefore = await Promise.all(people.map((p) => pcCount(p.page)));
  const tilesBefore = await Promise.all(people.map((p) => tileIds(p.page)));
  const before = await Promise.all(people.map((p) => remoteVideoStats(p.page)));

  // Down for at least 3 s: the clients' sockets close (1001) and they retry with backoff meanwhile.
  let during = null;
  step('restarting');
  await fx.server.restart(3_000, async () => {
    await sleep(1_500);
    during = await Promise.all(people.map((p) => remoteVideoStats(p.page)));
    // The quiet notice (not the red banner). Chromium in this loopback-only namespace says it is
    // offline (no default route), so the notice reads "offline" here and "server away" on a phone
    // with a network; both are the same quiet line.
    await waitFor(async () => pat.page.locator(QUIET_NOTICE).isVisible(), { timeout: 5_000, what: 'the quiet "server away" notice on the phone' });
    await shot(pat.page, 'n-phone-server-away');
    assert.equal(await pat.page.locator(tid('error-banner')).count(), 0, 'no red error banner while the call goes on');
  });

  for (let i = 0; i < people.length; i++) {
    for (const id of Object.keys(before[i])) {
      assert.ok(during[i][id] && during[i][id].frames > before[i][id].frames,
        `${people[i].label}: video of ${id} kept decoding while the server was away (${before[i][id]?.frames} -> ${during[i][id]?.frames})`);
    }
  }

  step('restarted');
  // Everyone back on the server: the notice goes, as each client's login is answered.
  await Promise.all(people.map((p) => waitFor(async () => (await p.page.locator(QUIET_NOTICE).count()) === 0,
    { timeout: 30_000, what: `${p.label} back on the server` })));
  // Time for anything that would renegotiate to do so.
  await sleep(4_000);
  for (let i = 0; i < people.length; i++) {
    const p = people[i];
    assert.equal(await pcCount(p.page), pcsBefore[i], `${p.label} created no new peer connection`);
    const sent = await sentTypes(p.page);
    assert.ok(sent.includes('login'), `${p.label} logged in again (${sent})`);
    assert.deepEqual(sent.filter((t) => t === 'offer' || t === 'answer'), [], `${p.label} sent no offer or answer`);
    assert.deepEqual((await tileIds(p.page)).sort(), [...tilesBefore[i]].sort(), `${p.label} shows the same members`);
    assert.ok((await pcStates(p.page)).filter((s) => s !== 'closed').every((s) => s === 'connected'),
      `${p.label}: every peer connection still connected`);
  }
  step('checked: same links, no offers');
  await Promise.all(people.map((p) => waitForPlayingVideos(p.page, 1, 30_000)));

  // The data channels never went away either.
  const text = `after the restart ${Date.now()}`;
  await sendChat(ann.page, text, '');
  await waitForChat(pat.page, text);

  step('chat after restart');
  // The restarted server knows both under their old ids: a newcomer meets them.
  const kim = await fx.person('n-kim', DESKTOP);
  await joinByLink(kim.page, fx.base, room, kim.label, '', linkHash(ann.page));
  const kimSees = await waitForPlayingVideos(kim.page, 2, 60_000);
  assert.deepEqual(Object.keys(kimSees).sort(), [...ids].sort(), 'the newcomer sees both by their old session ids');
  await Promise.all(people.map((p) => waitForPlayingVideos(p.page, 2, 60_000)));
  await shot(pat.page, 'n-phone-after-restart');
});
