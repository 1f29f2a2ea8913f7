// (n) A room's host: locks the room (a newcomer is told it is locked), turns the lobby on and
// lets a knocking newcomer in, asks a member to mute (who is muted and told honestly that this
// is a request), and removes a member (who is out, told why, and refused when trying again).
// A newcomer gets the last page of the chat so far (without whispers) from a member present and
// scrolls back to the beginning, unless the host turned chat history off. A knock counts down on
// the entry screen; one that expires says so, and knocking again reaches the host, who lets the
// person in. Screenshots of what each person sees at phone portrait, phone landscape and desktop
// sizes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { startPeerbox } from '../lib/server.mjs';
import { DESKTOP, PHONE, shot, withoutDevices } from '../lib/browser.mjs';
import {
  chatMessages, ensureChatOpen, join, joinByLink, linkHash, memberCountShows, pickRandomRoom, sendChat, startCall, tid, waitFor, waitForChat,
  sleep,
} from '../lib/app.mjs';

const fx = useFixture({ name: 'n' });
const LANDSCAPE = { ...PHONE, viewport: { width: 844, height: 390 } };

/** The error banner's type once it shows. */
async function bannerType(page) {
  const banner = page.locator(tid('error-banner'));
  await banner.waitFor({ state: 'visible', timeout: 30_000 });
  return { type: await banner.getAttribute('data-type'), text: await banner.innerText() };
}

/** Opens the People tab (a drawer on phones). */
async function openPeople(page) {
  const tab = page.locator(tid('tab-people'));
  if (!(await tab.isVisible())) await page.locator(tid('chat-toggle')).click();
  await tab.click();
  await page.locator(tid('host-controls')).waitFor({ state: 'visible' });
}

test('lock, lobby admit, ask to mute, remove', { timeout: 240_000 }, async () => {
  const ann = await fx.person('n-ann', DESKTOP);
  const bob = await fx.person('n-bob', PHONE);
  const cy = await fx.person('n-cy', LANDSCAPE);
  const room = await pickRandomRoom(ann.page, fx.base);
  await join(ann.page, 'Ann');
  await openPeople(ann.page);
  assert.equal(await ann.page.locator(tid('host-controls')).getAttribute('data-host'), 'true', 'the creator is host');

  // Locked: Bob is told so and stays on the entry screen.
  await ann.page.locator(tid('host-lock')).check();
  await waitFor(async () => (await ann.page.locator(tid('host-lock-toggle')).getAttribute('aria-pressed')) === 'true',
    { what: 'the bar to show the room locked' });
  await bob.page.goto(`${fx.base}/room/${room}${linkHash(ann.page)}`);
  await bob.page.locator(tid('name-input')).fill('Bob');
  await bob.page.locator(tid('join-button')).click();
  const locked = await bannerType(bob.page);
  assert.equal(locked.type, 'locked', locked.text);
  assert.match(locked.text, /locked/i);
  assert.equal(await bob.page.locator(tid('leave-button')).count(), 0, 'no call screen for a locked room');
  await shot(bob.page, 'n-locked-phone');

  // Lobby: Bob knocks, Ann sees him waiting and lets him in.
  await ann.page.locator(tid('host-lock')).uncheck();
  await ann.page.locator(tid('host-lobby')).check();
  await bob.page.locator(tid('join-button')).click();
  await bob.page.locator(tid('knocking')).waitFor({ state: 'visible', timeout: 30_000 });
  assert.equal(await bob.page.locator(tid('leave-button')).count(), 0, 'a knocker is not in the call');
  const row = ann.page.locator(tid('lobby-row')).filter({ hasText: 'Bob' });
  await row.waitFor({ state: 'visible', timeout: 30_000 });
  await shot(bob.page, 'n-knocking-phone');
  await shot(ann.page, 'n-host-lobby-desktop');
  await row.locator(tid('lobby-admit')).click();
  await bob.page.locator(tid('leave-button')).waitFor({ state: 'visible', timeout: 30_000 });
  await memberCountShows(ann.page, 2);
  await memberCountShows(bob.page, 2);
  await openPeople(bob.page);
  assert.equal(await bob.page.locator(tid('host-controls')).getAttribute('data-host'), 'false');
  assert.match(await bob.page.locator(tid('host-info')).innerText(), /Ann/, 'Bob sees who hosts');
  await ann.page.locator(tid('host-lobby')).uncheck();

  // Ask to mute: Bob's microphone goes off and he is told it was a request.
  const bobRow = ann.page.locator(tid('people-row')).filter({ hasText: 'Bob' });
  await bobRow.locator(tid('ask-mute')).waitFor({ state: 'visible' });
  await waitFor(async () => !(await bobRow.locator(tid('ask-mute')).isDisabled()), { what: "Bob's mic state to arrive" });
  await bobRow.locator(tid('ask-mute')).click();
  await waitFor(async () => (await bob.page.locator(tid('mic-toggle')).getAttribute('aria-pressed')) === 'true',
    { what: 'Bob muted' });
  const notice = bob.page.locator(`${tid('toast')}[data-kind="host"]`).filter({ hasText: /modified app/ });
  await notice.waitFor({ state: 'visible', timeout: 10_000 });
  await shot(bob.page, 'n-asked-mute-phone');

  // Remove: Cy comes in, is removed, told why, and refused when trying again.
  await joinByLink(cy.page, fx.base, room, 'Cy', '', linkHash(ann.page));
  await memberCountShows(ann.page, 3);
  await shot(cy.page, 'n-call-landscape');
  const cyRow = ann.page.locator(tid('people-row')).filter({ hasText: 'Cy' });
  await cyRow.locator(tid('remove-member')).click();
  const removed = await bannerType(cy.page);
  assert.equal(removed.type, 'removed', removed.text);
  assert.equal(await cy.page.locator(tid('leave-button')).count(), 0, 'the removed member is out of the call');
  await memberCountShows(ann.page, 2);
  await memberCountShows(bob.page, 2);
  await shot(cy.page, 'n-removed-landscape');
  await cy.page.locator('.banner-close').click();
  await cy.page.locator(tid('error-banner')).waitFor({ state: 'hidden' });
  await cy.page.locator(tid('join-button')).click();
  assert.equal((await bannerType(cy.page)).type, 'removed', 'the rejoin is refused');
  assert.equal(await cy.page.locator(tid('leave-button')).count(), 0);
  await shot(ann.page, 'n-host-desktop');
});

test('a newcomer gets the last page of the chat, scrolls back to the beginning, never sees a whisper; the host can turn history off', { timeout: 240_000 }, async () => {
  // Without cameras: four encoders would make this about history slow on a busy machine.
  const ann = await withoutDevices(await fx.person('n-h-ann', DESKTOP));
  const bob = await withoutDevices(await fx.person('n-h-bob', DESKTOP));
  const { room, ids } = await startCall(fx.base, [ann, bob], { waitVideo: false });
  await sendChat(ann.page, 'before you came: hello');
  await sendChat(bob.page, 'a secret for Ann only', ids[0]);
  // 64 more: the newcomer's first page (50) holds neither the hello nor the first of these.
  for (let i = 1; i <= 64; i++) await sendChat(i % 2 ? ann.page : bob.page, `message ${i}`);
  await waitForChat(bob.page, 'message 63');
  await waitForChat(ann.page, 'message 64');
  await waitForChat(ann.page, 'a secret for Ann');

  const cy = await withoutDevices(await fx.person('n-h-cy', PHONE));
  await joinByLink(cy.page, fx.base, room, 'Cy', '', linkHash(ann.page));
  await memberCountShows(cy.page, 3);
  await ensureChatOpen(cy.page);
  await waitForChat(cy.page, 'message 64');
  const past = cy.page.locator(`${tid('chat-message')}[data-past="true"]`);
  await waitFor(async () => (await past.count()) === 50, { what: 'the last page: 50 messages' });
  let seen = await chatMessages(cy.page);
  assert.ok(seen[0].text.includes('message 15'), `the page starts at message 15: ${seen[0].text}`);

  // Scrolled to the top: the older page comes, then the beginning of the conversation.
  await cy.page.locator(tid('chat-list')).evaluate((el) => el.scrollTo({ top: 0 }));
  const marker = cy.page.locator(`${tid('chat-past')}[data-state="start"]`);
  await marker.waitFor({ state: 'visible', timeout: 30_000 });
  seen = await chatMessages(cy.page);
  const texts = seen.map((m) => m.text);
  assert.equal(seen.length, 65, JSON.stringify(texts));
  assert.equal(texts.filter((t) => t.includes('before you came')).length, 1, 'each message once');
  assert.ok(texts[0].includes('before you came: hello'), 'in time order, the first first');
  for (let i = 1; i < 64; i++) {
    assert.ok(texts.findIndex((t) => t.endsWith(`message ${i}`)) < texts.findIndex((t) => t.endsWith(`message ${i + 1}`)), `message ${i} before ${i + 1}`);
  }
  assert.equal(seen.filter((m) => m.text.includes('secret') || m.whisper === 'true').length, 0, 'no whisper in the history');
  assert.equal(seen.find((m) => m.text.includes('before you came')).from, ids[0], 'the message keeps its author');
  await cy.page.locator(tid('chat-list')).evaluate((el) => el.scrollTo({ top: 0 }));
  await shot(cy.page, 'n-history-phone');
  // The marker and the first message are on screen, not under the controls, at each size.
  for (const [name, width, height] of [['landscape', 844, 390], ['desktop', 1366, 768]]) {
    await cy.page.setViewportSize({ width, height });
    await ensureChatOpen(cy.page);
    await cy.page.locator(tid('chat-list')).evaluate((el) => el.scrollTo({ top: 0 }));
    await marker.waitFor({ state: 'visible' });
    const list = await cy.page.locator(tid('chat-list')).boundingBox();
    for (const [what, box] of [['the marker', await marker.boundingBox()], ['the first message', await cy.page.locator(tid('chat-message')).first().boundingBox()]]) {
      assert.ok(box && box.y >= list.y - 1 && box.y + box.height <= Math.min(list.y + list.height, height) + 1 && box.x >= 0 && box.x + box.width <= width + 1,
        `${what} is inside the chat list on screen at ${name}: ${JSON.stringify({ box, list })}`);
    }
    await shot(cy.page, `n-history-${name}`);
  }
  await cy.page.setViewportSize(PHONE.viewport);

  // History off: the next newcomer gets nothing from before.
  await openPeople(ann.page);
  await ann.page.locator(tid('host-history')).uncheck();
  await sleep(500);
  const di = await withoutDevices(await fx.person('n-h-di', DESKTOP));
  await joinByLink(di.page, fx.base, room, 'Di', '', linkHash(ann.page));
  await memberCountShows(di.page, 4);
  await sleep(3_000);
  assert.deepEqual(await chatMessages(di.page), [], 'no history when the host turned it off');
  assert.equal(await di.page.locator(tid('chat-past')).count(), 0, 'and no way to ask for it');
});

test('a knock counts down, expires with a clear message, and knocking again gets in', { timeout: 150_000 }, async () => {
  // A short wait of its own (rooms.lobby_wait_secs), so that the other tests' knocks never expire.
  const server = await startPeerbox({ name: 'n-knock', extraRooms: 'lobby_wait_secs = 8' });
  try {
    const ann = await withoutDevices(await fx.person('n-k-ann', DESKTOP));
    const bob = await withoutDevices(await fx.person('n-k-bob', PHONE));
    const room = await pickRandomRoom(ann.page, server.url);
    await join(ann.page, 'Ann');
    await openPeople(ann.page);
    await ann.page.locator(tid('host-lobby')).check();
    await sleep(300);
    await bob.page.goto(`${server.url}/room/${room}${linkHash(ann.page)}`);
    await bob.page.locator(tid('name-input')).fill('Bob');
    await bob.page.locator(tid('join-button')).click();

    // The countdown: "0:0N left", going down.
    const knocking = bob.page.locator(tid('knocking'));
    await knocking.waitFor({ state: 'visible', timeout: 30_000 });
    const left = async () => Number((await knocking.innerText()).match(/0:0(\d) left/)?.[1] ?? NaN);
    const first = await left();
    assert.ok(first >= 1 && first <= 8, `a countdown from at most 8 s: ${await knocking.innerText()}`);
    await shot(bob.page, 'n-knock-countdown-phone');
    await waitFor(async () => (await left()) < first, { what: 'the countdown to go down', timeout: 5_000 });
    await ann.page.locator(tid('lobby-row')).filter({ hasText: 'Bob' }).waitFor({ state: 'visible', timeout: 10_000 });

    // Nobody answers: the knock ends, said plainly, and the host's list empties.
    const ended = bob.page.locator(tid('knock-ended'));
    await ended.waitFor({ state: 'visible', timeout: 20_000 });
    assert.equal(await ended.getAttribute('data-type'), 'lobby-timeout');
    assert.match(await ended.innerText(), /Nobody let you in/);
    assert.equal(await knocking.count(), 0, 'no countdown once the knock ended');
    await ann.page.locator(tid('lobby-row')).waitFor({ state: 'detached', timeout: 10_000 });
    await shot(bob.page, 'n-knock-expired-phone');

    // Knock again: the host sees it and lets Bob in.
    await bob.page.locator(tid('knock-again')).click();
    await knocking.waitFor({ state: 'visible', timeout: 10_000 });
    const row = ann.page.locator(tid('lobby-row')).filter({ hasText: 'Bob' });
    await row.waitFor({ state: 'visible', timeout: 10_000 });
    await row.locator(tid('lobby-admit')).click();
    await bob.page.locator(tid('leave-button')).waitFor({ state: 'visible', timeout: 30_000 });
    await memberCountShows(ann.page, 2);
    await memberCountShows(bob.page, 2);
  } finally {
    await server.stop();
  }
});
