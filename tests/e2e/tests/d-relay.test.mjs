// (d) With ?relay=1 the call goes through peerbox's own TURN server; ticking "Always relay" in a
// running call moves it there at once (and back); the connection check shows each path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { shot } from '../lib/browser.mjs';
import { startCall, inboundStats, waitFor, sleep, control, tid } from '../lib/app.mjs';

const fx = useFixture({ name: 'd' });

test('?relay=1 connects through peerbox TURN: relay/relay pair, frames decoding', { timeout: 150_000 }, async () => {
  const people = [await fx.person('d-ann'), await fx.person('d-bob')];
  await startCall(fx.base, people, { query: '?relay=1' });
  for (const p of people) {
    const first = await waitFor(async () => {
      const s = (await inboundStats(p.page)).filter((e) => e.connectionState === 'connected');
      return s.length === 1 && s[0].local && s[0].remote ? s[0] : null;
    }, { what: `${p.label}: one connected peer connection with a selected pair` });
    assert.equal(first.policy, 'relay', `${p.label}: iceTransportPolicy`);
    assert.equal(first.local, 'relay', `${p.label}: local candidate type of the selected pair`);
    assert.equal(first.remote, 'relay', `${p.label}: remote candidate type of the selected pair`);
    await sleep(2_000);
    const later = (await inboundStats(p.page)).find((e) => e.connectionState === 'connected');
    assert.ok(later.framesDecoded > first.framesDecoded, `${p.label}: framesDecoded grows (${first.framesDecoded} -> ${later.framesDecoded})`);
    assert.ok(later.videoBytes > first.videoBytes, `${p.label}: video bytesReceived grows`);
  }
});

/** Ann's one connected peer connection: its policy and the selected pair's candidate types. */
const annPath = async (page) => (await inboundStats(page)).find((e) => e.connectionState === 'connected' && e.local) ?? null;

test('ticking "Always relay" mid-call moves the running call to the relay at once, and back', { timeout: 150_000 }, async () => {
  const people = [await fx.person('d-cat'), await fx.person('d-dan')];
  await startCall(fx.base, people);
  const [cat, dan] = people;
  const direct = await waitFor(() => annPath(cat.page), { what: 'a selected pair' });
  assert.equal(direct.local, 'host', 'a direct (host) path first');

  await control(cat.page, 'settings-button');
  const box = cat.page.locator(tid('settings-relay'));
  await box.check();
  const relayed = await waitFor(async () => {
    const p = await annPath(cat.page);
    return p && p.policy === 'relay' && p.local === 'relay' ? p : null;
  }, { timeout: 20_000, what: 'the running call to move to the relay' });
  // Both ends were replaced (the first offer of Cat's new connection says so): Dan has one new
  // connection and none left over.
  const danPcs = await dan.page.evaluate(() => window.__pcs.map((p) => p.connectionState));
  assert.equal(danPcs.filter((x) => x !== 'closed').length, 1, `one live connection at Dan (${danPcs})`);
  const before = (await inboundStats(dan.page)).find((e) => e.connectionState === 'connected');
  await sleep(2_000);
  const after = (await inboundStats(dan.page)).find((e) => e.connectionState === 'connected');
  assert.ok(after.framesDecoded > before.framesDecoded, 'the other side keeps receiving video over the relay');
  // The people list says so too (from getStats): relayed.
  await cat.page.locator(tid('settings-close')).click();
  await cat.page.locator(tid('tab-people')).click();
  await waitFor(async () => (await cat.page.locator(tid('people-stats')).getAttribute('data-path')) === 'relay', {
    what: 'the people list to show the relayed path',
  });
  await control(cat.page, 'settings-button');
  await box.uncheck();
  await waitFor(async () => {
    const p = await annPath(cat.page);
    return p && p.policy === 'all' && p.local === 'host';
  }, { timeout: 20_000, what: 'back to a direct path' });
  assert.ok(relayed);
  assert.match(await cat.page.locator(tid('settings-dialog')).innerText(), /IP address.*at once/is, 'the setting says what it does, and when');
});

test('the connection check in a call shows which paths reach this peerbox, and copies a report', { timeout: 120_000 }, async () => {
  const people = [await fx.person('d-eve'), await fx.person('d-fay')];
  await startCall(fx.base, people, { waitVideo: false });
  const { page } = people[0];
  await control(page, 'settings-button');
  await page.locator(tid('settings-check')).click();
  await page.locator(tid('check-run')).click();
  const results = await waitFor(async () => {
    const rows = await page.locator(tid('check-result')).evaluateAll((els) =>
      els.map((e) => ({ url: e.dataset.url, status: e.dataset.status, type: e.dataset.type, text: e.innerText })));
    return rows.length && !(await page.locator(tid('check-run')).isDisabled()) ? rows : null;
  }, { timeout: 30_000, what: 'the check to finish' });
  console.log(`# ${JSON.stringify(results.map(({ url, status, type }) => ({ url, status, type })))}`);
  for (const r of results.filter((x) => x.url.startsWith('turn:'))) {
    assert.equal(r.status, 'ok', `${r.url}: reached (${r.text})`);
    assert.equal(r.type, 'relay', `${r.url}: a relay candidate`);
  }
  assert.ok(results.some((x) => x.url.includes('transport=udp')) && results.some((x) => x.url.includes('transport=tcp')), 'TURN over UDP and TCP were both tried');
  for (const r of results.filter((x) => x.url.startsWith('stun:'))) assert.notEqual(r.status, 'failed', `${r.url}: answered (${r.text})`);
  await shot(page, 'd-check');
  await page.locator(tid('check-copy')).click();
  const report = await page.evaluate(() => navigator.clipboard.readText());
  assert.match(report, /^OK .*turn:.*transport=udp/m, 'the report lists the working paths');
  assert.match(report, /certificate/i, 'the report says TURN over TLS needs a trusted certificate');
});
