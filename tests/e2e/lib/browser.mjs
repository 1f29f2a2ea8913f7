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
 * Test-only instrumentation installed before the app loads: keeps every RTCPeerConnection
 * in window.__pcs (the client exposes none), and remembers whether a file-progress element
 * was ever shown (a 1 MiB transfer on loopback may finish between two polls).
 */
function instrument() {
  // The test namespace has only loopback, so Chromium reports navigator.onLine === false
  // there although every server the app uses is reachable; a person's machine has a network.
  // A test simulates losing the network with goOffline() (window.__netOffline + the event).
  Object.defineProperty(Navigator.prototype, 'onLine', { configurable: true, get: () => !window.__netOffline });
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  if (Orig) {
    class Recorded extends Orig {
      constructor(...args) {
        super(...args);
        window.__pcs.push(this);
      }
    }
    window.RTCPeerConnection = Recorded;
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
 * A person: their own browser context (own storage, own permissions) and page.
 * Console messages and page errors go to out/<label>.console.log for post-mortems.
 */
export async function newPerson(browser, label, device = DESKTOP) {
  const context = await browser.newContext({
    ...device,
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
    permissions: ['camera', 'microphone'],
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

/** What the browser tells a page when the machine loses its network (navigator.onLine + event). */
export function goOffline(page) {
  return page.evaluate(() => {
    window.__netOffline = true;
    window.dispatchEvent(new Event('offline'));
  });
}
