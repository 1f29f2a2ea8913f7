// The entry screen and leaving (issue 10): Leave turns the camera and mic off until the person
// turns them on again; an invitation link is checked (a guessable name is marked as such, a
// 300-character one is refused, not cut); joining while the server cannot be reached says so
// and stays on the entry screen (the dice still gives a room); a server that refuses the
// connection (too-many-connections) is retried slowly, with the reason in the person's language.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { PHONE, shot as screenshot } from '../lib/browser.mjs';
import { startPeerbox } from '../lib/server.mjs';
import { pickRandomRoom, join, tid, waitFor, sleep } from '../lib/app.mjs';

const fx = useFixture({ name: 'l' });
const shot = (page, name) => screenshot(page, `l-${name}`);
const liveTracks = (page) => page.evaluate(() => (window.__tracks ?? []).filter((t) => t.readyState === 'live').map((t) => t.kind));

test('after Leave the camera and mic are off, and come back only when asked', { timeout: 120_000 }, async () => {
  const ann = await fx.person('l-ann', PHONE);
  await pickRandomRoom(ann.page, fx.base);
  await join(ann.page, 'Ann');
  assert.deepEqual((await liveTracks(ann.page)).sort(), ['audio', 'video'], 'camera and mic on in the call');
  await ann.page.locator(tid('leave-button')).click();
  await ann.page.locator(tid('join-button')).waitFor();
  await waitFor(async () => (await liveTracks(ann.page)).length === 0, { timeout: 5_000, what: 'every camera and mic track ended after Leave' });
  await sleep(1_500);
  assert.deepEqual(await liveTracks(ann.page), [], 'the entry screen does not turn the camera back on by itself');
  await shot(ann.page, 'after-leave');
  await ann.page.locator(tid('preview-start')).click();
  await waitFor(async () => (await liveTracks(ann.page)).length === 2, { what: 'the camera back on when asked' });
});

test('invitation links: a guessable name is marked, a 300-character one is refused, not cut', { timeout: 120_000 }, async () => {
  const bob = await fx.person('l-bob', PHONE);
  await bob.page.goto(`${fx.base}/room/not-a-uuid`);
  const hint = bob.page.locator(tid('room-hint'));
  assert.match(await hint.innerText(), /guess/i, 'a hand-picked name says anyone who guesses it can join');
  assert.equal(await bob.page.locator(tid('join-button')).isEnabled(), true, 'such names stay allowed');

  const long = 'x'.repeat(300);
  await bob.page.goto(`${fx.base}/room/${long}`);
  assert.match(await hint.innerText(), /300/, 'the hint says the name is too long, with its length');
  assert.equal(await bob.page.locator(tid('join-button')).isEnabled(), false, 'a damaged link cannot be joined');
  assert.equal(await bob.page.locator(tid('room-input')).inputValue(), long, 'the name is shown as it came, not cut');
  await shot(bob.page, 'long-invite');
  await bob.page.locator(tid('new-room')).click();
  const room = await waitFor(async () => {
    const v = await bob.page.locator(tid('room-input')).inputValue();
    return /^[0-9a-f-]{36}$/.test(v) ? v : null;
  }, { what: 'a new random room' });
  assert.equal(await bob.page.locator(tid('room-input')).isEditable(), true, 'the room field is open again');
  await join(bob.page, 'Bob');
  assert.ok(room);
});

test('joining while the server is unreachable says so and stays on the entry screen', { timeout: 120_000 }, async () => {
  const server = await startPeerbox({ name: 'l-away' });
  const cid = await fx.person('l-cid');
  try {
    await cid.page.goto(`${server.url}/`);
    await cid.page.locator(tid('join-button')).waitFor();
    await sleep(500);
  } finally {
    await server.stop();
  }
  await cid.page.locator(tid('room-random')).click();
  await waitFor(async () => /^[0-9a-f-]{36}$/.test(await cid.page.locator(tid('room-input')).inputValue()), {
    timeout: 10_000, what: 'the dice to give a room without the server',
  });
  assert.match(await cid.page.locator(tid('room-hint')).innerText(), /did not answer/i, 'the dice says the server did not answer');
  await cid.page.locator(tid('join-button')).click();
  await cid.page.locator(tid('join-unreachable')).waitFor({ timeout: 15_000 });
  assert.equal(await cid.page.locator(tid('leave-button')).count(), 0, 'no call screen without the server');
  assert.equal(await cid.page.locator(tid('waiting')).count(), 0, 'no pretend "waiting for others"');
  await shot(cid.page, 'unreachable');
  await cid.page.locator(tid('join-cancel')).click();
  await cid.page.locator(tid('join-unreachable')).waitFor({ state: 'detached' });
});

test('a refused connection (too-many-connections) is retried slowly and said in Korean', { timeout: 120_000 }, async () => {
  const server = await startPeerbox({ name: 'l-many', extraRooms: 'max_connections_per_ip = 1' });
  try {
    const first = await fx.person('l-first');
    await first.page.goto(`${server.url}/`);
    await first.page.locator(tid('join-button')).waitFor();
    await sleep(1_000);
    const dee = await fx.person('l-dee', PHONE, { locale: 'ko-KR' });
    await dee.page.goto(`${server.url}/`);
    const banner = dee.page.locator(`${tid('error-banner')}`);
    await banner.waitFor({ timeout: 15_000 });
    const t0 = Date.now();
    await sleep(7_000);
    const sockets = await dee.page.evaluate(() => window.__sockets.length);
    console.log(`# ${sockets} connection attempts in ${Date.now() - t0} ms after the first refusal`);
    assert.ok(sockets <= 4, `backs off: ${sockets} connection attempts in about 7 s`);
    assert.match(await banner.innerText(), /연결이 너무 많/, 'the reason, in Korean');
    assert.match(await dee.page.locator(tid('name-input')).inputValue(), /[가-힣]/, 'a Korean random nickname');
    await shot(dee.page, 'too-many-ko');
  } finally {
    await server.stop();
  }
});

test('pre-join check: the mic meter moves, another mic can be picked, and joining muted without camera carries into the call', { timeout: 120_000 }, async () => {
  const ann = await fx.person('l-ann2');
  const bob = await fx.person('l-bob2', PHONE);
  const room = await pickRandomRoom(ann.page, fx.base);
  await join(ann.page, 'Ann');
  await bob.page.goto(`${fx.base}/room/${room}${new URL(ann.page.url()).hash}`);
  await bob.page.locator(`${tid('prejoin-devices')} > summary`).click();
  await waitFor(async () => Number(await bob.page.locator(tid('mic-meter')).getAttribute('data-level')) > 0.01, {
    what: 'the mic meter to show the (fake) microphone',
  });
  const mics = await bob.page.locator(`${tid('pick-mic')} option`).evaluateAll((os) => os.map((o) => o.value));
  assert.ok(mics.length >= 2, `more than one microphone to pick from (${mics.length})`);
  await bob.page.locator(tid('pick-mic')).selectOption(mics[1]);
  await waitFor(() => bob.page.evaluate((id) => {
    const live = window.__tracks.filter((t) => t.kind === 'audio' && t.readyState === 'live');
    return live.length === 1 && live[0].getSettings().deviceId === id;
  }, mics[1]), { what: 'the picked microphone to be the one in use (and the old one stopped)' });
  await bob.page.locator(tid('prejoin-mic')).click();
  await bob.page.locator(tid('prejoin-camera')).click();
  assert.match(await bob.page.locator(tid('prejoin-note')).innerText(), /microphone and camera off/i, 'the page says how you will join');
  await shot(bob.page, 'prejoin');
  await join(bob.page, 'Bob');
  assert.equal(await bob.page.locator(tid('mic-toggle')).getAttribute('aria-pressed'), 'true', 'still muted in the call');
  const bobTile = ann.page.locator(tid('remote-tile'));
  await waitFor(async () => (await bobTile.getAttribute('data-mic')) === 'off' && (await bobTile.getAttribute('data-cam')) === 'off', {
    what: 'Ann to see Bob muted and without camera',
  });
  await bob.page.locator(tid('mic-toggle')).click();
  await waitFor(async () => (await bobTile.getAttribute('data-mic')) === 'on', { what: 'Ann to see Bob unmuted' });
});
