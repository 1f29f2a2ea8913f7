// (o) Verifiable end-to-end encryption in a mesh call. A room made with the dice gets a secret in
// its link's fragment: two people who open that link see each other as verified and read the same
// safety code. A relay that rewrites the DTLS fingerprint in the SDP the server passes on (here a
// WebSocket route in front of one person's signalling) is refused with a visible warning. A link
// without the fragment still makes a call, marked unverified.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { DESKTOP, PHONE, shot } from '../lib/browser.mjs';
import { join, joinByLink, pickRandomRoom, tid, waitFor, waitForPlayingVideos, waitForTiles } from '../lib/app.mjs';

const fx = useFixture({ name: 'o' });

async function openPeople(page) {
  const tab = page.locator(tid('tab-people'));
  if (!(await tab.isVisible())) await page.locator(tid('chat-toggle')).click();
  await tab.click();
}

/** The trust state and safety code each remote row of the People tab shows. */
function rows(page) {
  return page.locator(`${tid('people-row')}:not([data-self])`).evaluateAll((els) => els.map((e) => ({
    trust: e.querySelector('[data-testid="people-trust"]')?.getAttribute('data-trust') ?? '',
    code: e.querySelector('[data-testid="safety-code"]')?.textContent?.trim() ?? '',
  })));
}

test('a link with the room key: verified on both sides, the same safety code', { timeout: 150_000 }, async () => {
  const ann = await fx.person('o-ann', DESKTOP);
  const bob = await fx.person('o-bob', PHONE);
  await pickRandomRoom(ann.page, fx.base);
  await join(ann.page, 'Ann');
  const link = new URL(ann.page.url());
  assert.match(link.hash, /^#[A-Za-z0-9_-]{22}$/, 'the room link carries a key in its fragment');
  await bob.page.goto(link.href);
  await join(bob.page, 'Bob');
  await Promise.all([ann, bob].map((p) => waitForPlayingVideos(p.page, 1)));
  for (const p of [ann, bob]) {
    assert.equal(await p.page.locator(tid('trust-summary')).getAttribute('data-trust'), 'verified');
    await openPeople(p.page);
  }
  const [a, b] = await Promise.all([ann, bob].map((p) => waitFor(async () => {
    const r = await rows(p.page);
    return r.length === 1 && r[0].trust === 'verified' && r[0].code ? r[0] : null;
  }, { what: 'a verified row with a safety code' })));
  assert.match(a.code, /^\d{3} \d{3}$/);
  assert.equal(a.code, b.code, 'both sides read the same safety code');
  assert.equal(await ann.page.locator(`${tid('trust-badge')}[data-trust="verified"]`).count(), 1);
  await shot(ann.page, 'o-verified-desktop');
  await shot(bob.page, 'o-verified-phone');
});

test('a rewritten fingerprint is refused with a warning', { timeout: 150_000 }, async () => {
  const cat = await fx.person('o-cat', DESKTOP);
  const dan = await fx.person('o-dan', DESKTOP);
  // A relay in front of Dan's signalling that swaps one byte of every DTLS fingerprint Dan is sent.
  let rewritten = 0;
  await dan.page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      let v;
      try { v = JSON.parse(m); } catch { ws.send(m); return; }
      if ((v.type === 'offer' || v.type === 'answer') && typeof v.data?.sdp === 'string') {
        v.data.sdp = v.data.sdp.replace(/(a=fingerprint:sha-256 [0-9A-F:]*)([0-9A-F]{2})/g, (_, head, last) => `${head}${last === '00' ? '11' : '00'}`);
        rewritten += 1;
      }
      ws.send(JSON.stringify(v));
    });
  });
  await pickRandomRoom(cat.page, fx.base);
  await join(cat.page, 'Cat');
  await dan.page.goto(cat.page.url());
  await join(dan.page, 'Dan');
  await waitForTiles(dan.page, 1);
  await waitFor(async () => (await dan.page.locator(tid('trust-summary')).getAttribute('data-trust')) === 'refused',
    { what: "Dan's header to say a connection was refused" });
  assert.ok(rewritten > 0, 'the relay rewrote an SDP');
  await dan.page.locator(`${tid('toast')}[data-kind="trust"]`).waitFor({ state: 'visible', timeout: 10_000 });
  assert.equal(await dan.page.locator(`${tid('trust-badge')}[data-trust="refused"]`).count(), 1, 'the tile says refused');
  await openPeople(dan.page);
  assert.deepEqual((await rows(dan.page)).map((r) => r.trust), ['refused']);
  const connected = await dan.page.evaluate(() => (window.__pcs ?? []).some((pc) => pc.connectionState === 'connected'));
  assert.equal(connected, false, 'nothing was connected with the rewritten fingerprint');
  await shot(dan.page, 'o-refused-desktop');
});

test('a link without a key still makes a call, marked unverified', { timeout: 150_000 }, async () => {
  const eve = await fx.person('o-eve', DESKTOP);
  const fay = await fx.person('o-fay', DESKTOP);
  const room = `typed-${Date.now()}`;
  await joinByLink(eve.page, fx.base, room, 'Eve');
  await joinByLink(fay.page, fx.base, room, 'Fay');
  await Promise.all([eve, fay].map((p) => waitForPlayingVideos(p.page, 1)));
  for (const p of [eve, fay]) {
    assert.equal(await p.page.locator(tid('trust-summary')).getAttribute('data-trust'), 'unverified');
    await openPeople(p.page);
    await waitFor(async () => (await rows(p.page))[0]?.code, { what: 'a safety code even without a key' });
    assert.equal((await rows(p.page))[0].trust, 'unverified');
  }
  assert.equal(new URL(eve.page.url()).hash, '', 'no key was invented for a typed name');
});
