// Owns headless Chromium for the suite: Debian's /usr/bin/chromium driven by playwright-core,
// with the flags measured in shared/browser-tests.md, one context per person in a call.

import { chromium } from 'playwright-core';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { OUT_DIR } from './paths.mjs';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  // Self-signed certificate of the test server, for the page and the WSS alike.
  '--ignore-certificate-errors',
  // Two or three people in one browser: keep every page painting and decoding.
  '--autoplay-policy=no-user-gesture-required',
];

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 60_000 });
}

export const DESKTOP = { viewport: { width: 1366, height: 768 } };
/** A 1366x768 laptop at 200 % browser zoom: CSS pixels halve, device pixels double. */
export const DESKTOP_200 = { viewport: { width: 683, height: 384 }, deviceScaleFactor: 2 };
export const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 3,
  isMobile: true,
  hasTouch: true,
  userAgent:
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) ' +
    'Chrome/156.0.0.0 Mobile Safari/537.36',
};

/**
 * Test-only instrumentation installed before the app loads: keeps every WebSocket in
 * window.__sockets (goOffline() drops the signalling connection) and every RTCPeerConnection
 * in window.__pcs (the client exposes none), and remembers whether a file-progress element
 * was ever shown (a 1 MiB transfer on loopback may finish between two polls).
 */
function instrument() {
  // Inside instrument(): addInitScript sends only this function's source to the page.
  const record = (ctor, list) => {
    window[list] = [];
    const Orig = window[ctor];
    if (!Orig) return;
    window[ctor] = class extends Orig {
      constructor(...args) {
        super(...args);
        window[list].push(this);
      }
    };
  };
  record('WebSocket', '__sockets');
  record('RTCPeerConnection', '__pcs');
  // Every camera, mic and screen track the page ever got, to check they are stopped after Leave.
  window.__tracks = [];
  const md = navigator.mediaDevices;
  for (const fn of ['getUserMedia', 'getDisplayMedia']) {
    const orig = md?.[fn]?.bind(md);
    if (!orig) continue;
    md[fn] = async (...args) => {
      const s = await orig(...args);
      window.__tracks.push(...s.getTracks());
      return s;
    };
  }
  window.__seenProgress = false;
  const check = () => {
    if (!window.__seenProgress && document.querySelector('[data-testid="file-progress"]')) {
      window.__seenProgress = true;
    }
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true, attributes: true });
}

/**
 * A person: their own browser context (own storage, own permissions) and page; `extra` adds
 * context options (e.g. `{ locale: 'ko-KR' }`).
 * Console messages and page errors go to out/<label>.console.log for post-mortems.
 */
export async function newPerson(browser, label, device = DESKTOP, extra = {}) {
  const context = await browser.newContext({
    ...device,
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
    // clipboard: "copy link" and "copy report" write to it, and tests read it back.
    permissions: ['camera', 'microphone', 'clipboard-read', 'clipboard-write'],
    ...extra,
  });
  await context.addInitScript(instrument);
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  mkdirSync(OUT_DIR, { recursive: true });
  const logFile = join(OUT_DIR, `${label}.console.log`);
  const log = (line) => appendFileSync(logFile, `${new Date().toISOString()} ${line}\n`);
  log(`--- new person ${label}`);
  page.on('console', (m) => log(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log(`[pageerror] ${e.stack ?? e}`));
  page.on('crash', () => log('[crash] page crashed'));
  return { label, context, page, close: () => context.close() };
}

/**
 * The machine loses its network: the browser goes offline (navigator.onLine false, the
 * `offline` event, new connections fail) and the open signalling socket drops, as it would
 * once the server stops answering. Playwright's offline emulation does not close sockets that
 * are already open, so the recorded ones are closed here.
 */
export async function goOffline(page) {
  await page.context().setOffline(true);
  // A reconnect already under way may still get through: keep closing for a moment.
  const deadline = Date.now() + 3_000;
  while (Date.now() < deadline) {
    await page.evaluate(() => {
      for (const ws of window.__sockets ?? []) {
        if (ws.readyState <= 1) ws.close(4000, 'test: network lost');
        // With the network emulated off, the closing handshake cannot finish and Chromium
        // fires `close` only much later; a dead network looks like this close (1006) to a page.
        if (ws.readyState === 2 && !ws.__closeSent) {
          ws.__closeSent = true;
          ws.dispatchEvent(new CloseEvent('close', { code: 1006, reason: 'test: network lost' }));
        }
      }
    });
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * A person whose device has no camera and no microphone (getUserMedia finds nothing): they join
 * receive-only. Call before the person's first page load.
 */
export async function withoutDevices(person) {
  await person.context.addInitScript(() => {
    const md = navigator.mediaDevices;
    if (!md) return;
    md.getUserMedia = () => Promise.reject(new DOMException('Requested device not found', 'NotFoundError'));
    md.enumerateDevices = async () => [];
  });
  return person;
}

/**
 * Saves what the page shows to out/NAME.png for a person to look at, in CSS pixels (a DPR-3
 * phone's full-resolution picture costs seconds of encoding on a busy machine). A screenshot is an
 * artefact, not a check: one that cannot be taken in time is reported on the console and the test
 * goes on.
 */
export async function shot(page, name) {
  try {
    await page.screenshot({ path: join(OUT_DIR, `${name}.png`), animations: 'disabled', scale: 'css', timeout: 20_000 });
  } catch (e) {
    console.log(`# screenshot ${name} not taken: ${e.message.split('\n')[0]}`);
  }
}
