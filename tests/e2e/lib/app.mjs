// What a person does in the peerbox web client, through the data-testid contract only,
// plus the checks a person would make (is the video playing, is it black, did it arrive).

import assert from 'node:assert/strict';

export const tid = (id) => `[data-testid="${id}"]`;

/** Retries `fn` until it returns a truthy value (returned) or the time is up (last error thrown). */
export async function waitFor(fn, { timeout = 30_000, interval = 250, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = null;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const err = new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
      if (last) err.cause = last;
      throw err;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Opens the entry page, clicks `room-random` and returns the room id it filled in. */
export async function pickRandomRoom(page, base, query = '') {
  await page.goto(`${base}/${query}`);
  await page.locator(tid('room-random')).click();
  const room = await waitFor(async () => (await page.locator(tid('room-input')).inputValue()).trim(), {
    what: 'room-random to fill the room field',
  });
  return room;
}

/** Types a name and clicks Join; resolves once the call screen (leave-button) shows. */
export async function join(page, name) {
  const nameInput = page.locator(tid('name-input'));
  if (await nameInput.isVisible() && await nameInput.isEditable()) await nameInput.fill(name);
  await page.locator(tid('join-button')).click();
  await page.locator(tid('leave-button')).waitFor({ state: 'visible', timeout: 30_000 });
}

/** Opens the room link `/room/<id>` (with `hash`, the room key of a dice room's link) and joins. */
export async function joinByLink(page, base, room, name, query = '', hash = '') {
  await page.goto(`${base}/room/${room}${query}${hash}`);
  await join(page, name);
}

/** The room key part (`#...`) of the link a page in a call shows, as its share link carries it. */
export const linkHash = (page) => new URL(page.url()).hash;

/** The session ids of the remote tiles a page shows. */
export function tileIds(page) {
  return page.locator(tid('remote-tile')).evaluateAll((els) => els.map((e) => e.getAttribute('data-peer-id')));
}

export async function waitForTiles(page, n, timeout = 45_000) {
  return waitFor(async () => {
    const ids = await tileIds(page);
    return ids.length === n && ids.every(Boolean) ? ids : null;
  }, { timeout, what: `${n} remote tile(s) with data-peer-id` });
}

/** Frames shown so far by each remote tile's <video>, keyed by peer id. */
export function remoteVideoStats(page) {
  return page.locator(tid('remote-tile')).evaluateAll((tiles) =>
    Object.fromEntries(
      tiles.map((t) => {
        const v = t.querySelector('video');
        const q = v?.getVideoPlaybackQuality?.();
        return [t.getAttribute('data-peer-id'), v
          ? { frames: q ? q.totalVideoFrames : 0, time: v.currentTime, w: v.videoWidth, h: v.videoHeight, paused: v.paused }
          : null];
      }),
    ),
  );
}

/**
 * Waits until the page shows `n` remote tiles whose videos are really playing: every one has
 * decoded frames, and both its frame count and currentTime advance over ~2 s.
 */
export async function waitForPlayingVideos(page, n, timeout = 60_000, only = null) {
  await waitForTiles(page, n, timeout);
  return waitFor(async () => {
    const a = await remoteVideoStats(page);
    const ids = Object.keys(a).filter((id) => !only || only.includes(id));
    if (!only && ids.length !== n) throw new Error(`expected ${n} tiles, saw ${ids.length}`);
    for (const id of ids) {
      if (!a[id]) throw new Error(`tile ${id} has no <video>`);
      if (a[id].frames === 0 || a[id].w === 0) throw new Error(`tile ${id}: no frame yet ${JSON.stringify(a[id])}`);
    }
    await sleep(2_000);
    const b = await remoteVideoStats(page);
    for (const id of ids) {
      if (!b[id]) throw new Error(`tile ${id} vanished`);
      if (!(b[id].frames > a[id].frames && b[id].time > a[id].time)) {
        throw new Error(`tile ${id} not advancing: ${JSON.stringify(a[id])} -> ${JSON.stringify(b[id])}`);
      }
    }
    return b;
  }, { timeout, what: `${n} remote video(s) playing`, interval: 500 });
}

/** Each page's own session id, derived from the tiles the others show. */
export async function sessionIds(pages) {
  const tiles = await Promise.all(pages.map((p) => tileIds(p)));
  return pages.map((_, i) => {
    const mine = new Set(tiles[i]);
    const seen = new Set(tiles.filter((_, j) => j !== i).flat().filter((id) => !mine.has(id)));
    assert.equal(seen.size, 1, `cannot tell person ${i}'s session id from the tiles: ${JSON.stringify(tiles)}`);
    return [...seen][0];
  });
}

export async function memberCountShows(page, n, timeout = 30_000) {
  return waitFor(async () => {
    const text = await page.locator(tid('member-count')).innerText();
    return new RegExp(`(^|\\D)${n}(\\D|$)`).test(text) ? text : null;
  }, { timeout, what: `member-count to show ${n}` });
}

/** Opens the chat drawer when it is a drawer (phones); on desktop the panel is always there. */
export async function ensureChatOpen(page) {
  const input = page.locator(tid('chat-input'));
  if (await input.isVisible()) return;
  const toggle = page.locator(tid('chat-toggle'));
  if (await toggle.isVisible()) await toggle.click();
  await input.waitFor({ state: 'visible' });
}

/** Sends a chat message to everyone ('' target) or to one member's session id. */
export async function sendChat(page, text, to = '') {
  await ensureChatOpen(page);
  const target = page.locator(tid('chat-target'));
  if (to !== '' || (await target.count()) > 0) await target.selectOption(to);
  await page.locator(tid('chat-input')).fill(text);
  await page.locator(tid('chat-send')).click();
}

/** The chat messages a page shows: text, sender, whisper flag. */
export function chatMessages(page) {
  return page.locator(tid('chat-message')).evaluateAll((els) =>
    els.map((e) => ({ text: e.textContent ?? '', from: e.getAttribute('data-from'), whisper: e.getAttribute('data-whisper') })),
  );
}

export async function waitForChat(page, text, timeout = 20_000) {
  return waitFor(async () => (await chatMessages(page)).find((m) => m.text.includes(text)), {
    timeout,
    what: `chat message "${text}"`,
  });
}

/** Mean brightness (0-255) of the current frame of the video in the tile of `peerId`. */
export function tileBrightness(page, peerId) {
  return page.locator(`${tid('remote-tile')}[data-peer-id="${peerId}"] video`).evaluate((v) => {
    const w = 64, h = 48;
    const c = document.createElement('canvas');
    c.width = w; c.height = h;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0, w, h);
    const d = g.getImageData(0, 0, w, h).data;
    let sum = 0;
    for (let i = 0; i < d.length; i += 4) sum += (d[i] + d[i + 1] + d[i + 2]) / 3;
    return sum / (w * h);
  });
}

/** Sum over the page's peer connections of what getStats reports, for the given picker. */
export function inboundStats(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs ?? []) {
      if (pc.connectionState === 'closed') continue;
      const stats = await pc.getStats();
      const byId = new Map();
      stats.forEach((s) => byId.set(s.id, s));
      let pair = null;
      stats.forEach((s) => {
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
      });
      if (!pair) stats.forEach((s) => { if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
      const entry = {
        connectionState: pc.connectionState,
        policy: pc.getConfiguration().iceTransportPolicy,
        local: pair ? byId.get(pair.localCandidateId)?.candidateType : null,
        remote: pair ? byId.get(pair.remoteCandidateId)?.candidateType : null,
        framesDecoded: 0,
        videoBytes: 0,
        audioEnergy: 0,
        audioPackets: 0,
      };
      stats.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') { entry.framesDecoded += s.framesDecoded ?? 0; entry.videoBytes += s.bytesReceived ?? 0; }
        if (s.kind === 'audio') { entry.audioEnergy += s.totalAudioEnergy ?? 0; entry.audioPackets += s.packetsReceived ?? 0; }
      });
      out.push(entry);
    }
    return out;
  });
}

/**
 * Starts a call of `people.length` persons through the UI: the first clicks room-random and
 * joins, the others open the room link and join; returns once everybody's remote videos play.
 * `query` (e.g. '?relay=1') is added to every URL; `silent` lists people who send no video.
 */
export async function startCall(base, people, { query = '', waitVideo = true, silent = [] } = {}) {
  const [first, ...rest] = people;
  const room = await pickRandomRoom(first.page, base, query);
  assert.match(room, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'room-random gives a UUID');
  await join(first.page, first.label);
  // The others open the link the first one shares: with the room key after '#'.
  const hash = linkHash(first.page);
  for (const p of rest) await joinByLink(p.page, base, room, p.label, query, hash);
  await Promise.all(people.map((p) => waitForTiles(p.page, people.length - 1)));
  const ids = await sessionIds(people.map((p) => p.page));
  if (waitVideo) {
    // `silent` people (no camera) send no video: everyone else's must play.
    const senders = ids.filter((_, i) => !silent.includes(people[i]));
    await Promise.all(people.map((p) => waitForPlayingVideos(p.page, people.length - 1, 60_000, senders)));
  }
  return { room, ids };
}

/**
 * Clicks one of the call controls by its data-testid. On a narrow phone the rarer ones
 * (screen-share, share-link, qr-button, settings-button, switch-camera) sit in the "more" menu,
 * which is opened first, as a person would.
 */
export async function control(page, id) {
  const direct = page.locator(`.controls > ${tid(id)}`);
  if (await direct.count() && await direct.isVisible()) return direct.click();
  await page.locator(tid('more-button')).click();
  await page.locator(`[role="menu"] ${tid(id)}`).click();
}

/**
 * How much of its picture a <video> shows: the share of the picture's width and height that is
 * visible in the element's box with its object-fit (cover crops, contain shows all), with the
 * numbers behind it.
 */
export function videoVisibility(locator) {
  return locator.evaluate((v) => {
    const fit = getComputedStyle(v).objectFit;
    const vw = v.videoWidth, vh = v.videoHeight, bw = v.clientWidth, bh = v.clientHeight;
    let w = 1, h = 1;
    if (fit === 'cover' && vw && vh && bw && bh) {
      const scale = Math.max(bw / vw, bh / vh);
      w = Math.min(1, bw / (vw * scale));
      h = Math.min(1, bh / (vh * scale));
    } else if (fit === 'none' && vw && vh) {
      w = Math.min(1, bw / vw);
      h = Math.min(1, bh / vh);
    }
    return { fit, vw, vh, bw, bh, w, h };
  });
}

/** What a tap at the centre of `locator` would hit: true when it is the element itself (or inside it). */
export function tapHits(locator) {
  return locator.evaluate((el) => {
    const r = el.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return { ok: !!hit && (hit === el || el.contains(hit) || (el.labels && [...el.labels].includes(hit))),
      hit: hit ? `${hit.tagName.toLowerCase()}${hit.id ? '#' + hit.id : ''}.${[...hit.classList].join('.')}` : null };
  });
}
