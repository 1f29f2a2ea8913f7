// A call as people live it (issue 10's annoyances): a member without camera or mic shows an
// initial and both badges; join and leave notices; chat links that are links (and markup that
// stays text); a file arriving while the phone's chat is closed gets a toast and the badge; a
// whisper target who leaves keeps the message private; a file sent while alone says so; the
// phone control bar stays one row, a tile tap does not go full screen, "Link copied" pushes
// nothing, Escape closes the drawer wherever the focus is; M and V work, mute and leave come
// early in the tab order, and the focus ring shows on a tile's dark bar; a raised hand shows on
// the tile, in a toast and in the people list, which also gives each connection's figures.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pathJoin } from 'node:path';
import { useFixture } from '../lib/fixture.mjs';
import { DESKTOP, PHONE, withoutDevices, shot as screenshot } from '../lib/browser.mjs';
import { startCall, tid, waitFor, sleep, sendChat, control, ensureChatOpen } from '../lib/app.mjs';

const fx = useFixture({ name: 'm' });
const shot = (page, name) => screenshot(page, `m-${name}`);
let problems = [];
const check = (ok, what) => { if (!ok) problems.push(what); };
/** Like waitFor, but a timeout is recorded as a problem instead of ending the test. */
async function soon(fn, what, timeout = 15_000) {
  try {
    return await waitFor(fn, { timeout, what });
  } catch {
    problems.push(`never: ${what}`);
    return null;
  }
}

test('a call as people live it: presence, files, whispers, links, controls, keyboard', { timeout: 300_000 }, async () => {
  problems = [];
  const dir = mkdtempSync(pathJoin(tmpdir(), 'peerbox-e2e-m-'));
  try {
    const file = pathJoin(dir, 'notes.txt');
    writeFileSync(file, 'hello from ann\n');
    const ann = await fx.person('m-ann', DESKTOP);
    const pat = await fx.person('m-pat', PHONE);
    const rio = await withoutDevices(await fx.person('m-rio', DESKTOP));
    const { ids } = await startCall(fx.base, [ann, pat, rio], { silent: [rio] });
    const [, patId, rioId] = ids;

    // Rio has no camera and no mic: an initial and both badges, not a blank tile.
    const rioTile = ann.page.locator(`${tid('remote-tile')}[data-peer-id="${rioId}"]`);
    await soon(async () => (await rioTile.locator(tid('badge-cam-off')).isVisible()) && (await rioTile.locator(tid('badge-mic-off')).isVisible()),
      'mic-off and camera-off badges on the tile of a member without devices');
    const letter = rioTile.locator(tid('tile-initial'));
    check((await letter.count()) > 0 && (await letter.innerText()).trim() === 'M', 'the tile of a member without camera shows their initial');

    // Join notices, in the chat (Ann's panel is always visible on a desktop).
    await soon(async () => (await ann.page.locator(`${tid('chat-notice')}[data-event="joined"]`).allInnerTexts()).some((t) => t.includes('m-rio')),
      'a "joined" notice for Rio at Ann');

    // Links are links; markup stays text.
    const text = `see https://example.org/a(b) and <b>bold</b> ${Date.now()}`;
    await sendChat(pat.page, text, '');
    const msg = ann.page.locator(tid('chat-message')).filter({ hasText: 'example.org' }).last();
    await msg.waitFor();
    const link = msg.locator('a');
    if (await link.count()) {
      check(await link.getAttribute('href') === 'https://example.org/a(b)', 'the link points where the text says');
      check(await link.getAttribute('rel') === 'noopener noreferrer' && await link.getAttribute('target') === '_blank', 'the link opens apart, without referrer');
    } else {
      check(false, 'a web address in a chat message is a link');
    }
    check((await msg.locator('b').count()) === 0 && (await msg.innerText()).includes('<b>bold</b>'), 'markup in a message stays text');
    await pat.page.locator(tid('drawer-close')).click().catch(() => pat.page.locator(tid('chat-toggle')).click());

    // Pat raises a hand: Ann sees it on the tile, in a toast and in the people list, which also
    // shows each connection's quality and figures from getStats().
    if ((await pat.page.locator(tid('more-button')).count()) || (await pat.page.locator(tid('raise-hand')).count())) {
      await control(pat.page, 'raise-hand');
    }
    await soon(async () => (await ann.page.locator(`${tid('remote-tile')}[data-peer-id="${patId}"] ${tid('badge-hand')}`).count()) > 0,
      'a raised hand on the tile');
    check((await ann.page.locator(`${tid('toast')}[data-kind="hand"]`).count()) > 0, 'a toast says who raised their hand');
    // A file to everyone while Pat's drawer is closed: a toast and the unread badge.
    await ann.page.locator(tid('chat-target')).selectOption('');
    await ann.page.locator(tid('file-input')).setInputFiles(file);
    await soon(async () => (await pat.page.locator(`${tid('toast')}[data-kind="file"]`).count()) > 0
      || (await pat.page.locator(tid('chat-toast')).count()) > 0, 'a toast at Pat when a file arrives with the chat closed');
    await soon(async () => (await pat.page.locator(tid('chat-unread')).count()) > 0, 'the unread badge at Pat for the file');
    await shot(pat.page, 'file-toast');

    // Phone: one row of controls at 390 and at 360 px; a tile tap does not go full screen.
    for (const width of [390, 360]) {
      await pat.page.setViewportSize({ width, height: width === 390 ? 844 : 640 });
      await sleep(400);
      const tops = await pat.page.locator('.controls > button, .controls > div > button').evaluateAll((els) =>
        els.filter((e) => e.offsetParent).map((e) => Math.round(e.getBoundingClientRect().top)));
      check(new Set(tops).size === 1, `phone ${width} px: the controls are one row (${tops})`);
    }
    await shot(pat.page, 'controls-360');
    await pat.page.setViewportSize({ width: 390, height: 844 });
    await pat.page.locator(tid('remote-tile')).first().tap({ position: { x: 40, y: 40 } });
    await sleep(400);
    check(!(await pat.page.evaluate(() => !!document.fullscreenElement)), 'a tap on a tile does not go full screen');
    await pat.page.evaluate(() => document.fullscreenElement && document.exitFullscreen());

    // "Link copied" is laid over the call: the grid does not move.
    const gridTop = () => pat.page.locator('.grid').evaluate((e) => e.getBoundingClientRect().top);
    const before = await gridTop();
    await control(pat.page, 'share-link');
    await soon(async () => (await pat.page.locator(`${tid('toast')}[data-kind="link"]`).count()) > 0
      || /copied/i.test(await pat.page.locator('.call-head').innerText()), 'a "link copied" notice');
    check(Math.abs((await gridTop()) - before) < 1, `the grid stays put when the link is copied (${before} -> ${await gridTop()})`);
    await shot(pat.page, 'link-copied');

    // Escape closes the drawer wherever the focus is.
    await ensureChatOpen(pat.page);
    await pat.page.evaluate(() => document.activeElement?.blur());
    await pat.page.keyboard.press('Escape');
    await sleep(300);
    check(!(await pat.page.locator(tid('chat-input')).isVisible()), 'Escape closes the phone drawer with the focus outside it');

    // Keyboard at Ann: mute first in the tab order and leave soon after; M and V; a visible ring on a tile bar.
    await ann.page.evaluate(() => document.activeElement?.blur());
    const order = [];
    for (let i = 0; i < 12; i++) {
      await ann.page.keyboard.press('Tab');
      order.push(await ann.page.evaluate(() => document.activeElement?.getAttribute('data-testid')));
    }
    check(order[0] === 'mic-toggle', `the first Tab reaches the microphone (${order})`);
    check(order.indexOf('leave-button') >= 0 && order.indexOf('leave-button') < 9, `Leave is within the first Tabs (${order})`);
    await ann.page.evaluate(() => document.activeElement?.blur());
    const pressed = (id) => ann.page.locator(tid(id)).getAttribute('aria-pressed');
    await ann.page.keyboard.press('m');
    await ann.page.keyboard.press('v');
    await sleep(200);
    check(await pressed('mic-toggle') === 'true', 'M mutes the microphone');
    check(await pressed('camera-toggle') === 'true', 'V turns the camera off');
    await ann.page.keyboard.press('m');
    await ann.page.keyboard.press('v');
    await ann.page.locator(tid('chat-input')).focus();
    await ann.page.keyboard.type('mv');
    check(await pressed('mic-toggle') === 'false', 'typing an m in the chat does not mute');
    await ann.page.locator(tid('chat-input')).fill('');
    const fsButton = ann.page.locator(`${tid('remote-tile')}[data-peer-id="${patId}"] ${tid('tile-fullscreen')}`);
    await fsButton.focus();
    await ann.page.keyboard.press('Shift+Tab');
    await ann.page.keyboard.press('Tab');
    const ring = await ann.page.evaluate(() => {
      const s = getComputedStyle(document.activeElement);
      return { color: s.outlineColor, style: s.outlineStyle, width: s.outlineWidth, testid: document.activeElement?.getAttribute('data-testid') };
    });
    check(ring.style === 'solid' && ring.color === 'rgb(255, 255, 255)', `a white focus ring on the dark tile bar (${JSON.stringify(ring)})`);
    await shot(ann.page, 'focus-ring');

    // The people list (its tab: clicked only after the tab-order checks above).
    if (await ann.page.locator(tid('tab-people')).count()) {
      await ann.page.locator(tid('tab-people')).click();
      const row = ann.page.locator(`${tid('people-row')}[data-peer-id="${patId}"]`);
      await soon(async () => (await row.getAttribute('data-hand')) === 'true', 'the raised hand in the people list');
      await soon(async () => ['good', 'fair', 'poor'].includes(await row.getAttribute('data-quality')), 'a measured connection quality');
      const stats = row.locator(tid('people-stats'));
      check(await stats.getAttribute('data-path') === 'direct', 'the path shows as direct');
      check(/kbit\/s/.test(await stats.innerText()) && /ms/.test(await stats.innerText()), `bitrate and round trip shown (${await stats.innerText()})`);
      await shot(ann.page, 'people');
      await ann.page.locator(tid('tab-chat')).click();
    } else {
      check(false, 'a list of the people in the call');
    }

    // A whisper to Rio, then Rio leaves: the message stays private, sending is off, and it says why.
    await ann.page.locator(tid('chat-target')).selectOption(rioId);
    await rio.page.locator(tid('leave-button')).click();
    await soon(async () => (await ann.page.locator(`${tid('chat-notice')}[data-event="left"]`).allInnerTexts()).some((t) => t.includes('m-rio')),
      'a "left" notice for Rio at Ann');
    await ann.page.locator(tid('chat-input')).fill('only for rio');
    await sleep(500);
    check(await ann.page.locator(tid('chat-target')).inputValue() === rioId, 'the whisper target stays chosen after they leave');
    check(await ann.page.locator(tid('chat-send')).isDisabled(), 'sending is off while the whisper target is gone');
    check((await ann.page.locator(tid('target-gone')).count()) > 0, 'the chat says the whisper target left');
    await shot(ann.page, 'whisper-gone');
    await ann.page.keyboard.press('Enter');
    await sleep(1_500);
    check(!(await pat.page.locator(tid('chat-message')).allInnerTexts()).some((t) => t.includes('only for rio')),
      'the whisper never reaches anyone else');

    // Alone in the room, a file does not vanish: it says nobody is here.
    await pat.page.locator(tid('leave-button')).click();
    await soon(async () => (await ann.page.locator(tid('remote-tile')).count()) === 0, 'Ann alone');
    await ann.page.locator(tid('chat-target')).selectOption('');
    await ann.page.locator(tid('file-input')).setInputFiles(file);
    await soon(async () => /nobody/i.test((await ann.page.locator(tid('file-unsent')).allInnerTexts()).join(' ')),
      'a file sent while alone says nobody is here');
    await shot(ann.page, 'alone-file');
    assert.deepEqual(problems, [], 'what a person would notice');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
