// Measures the web client (not part of the test run): time from clicking Join to the first
// remote video frame, host and relay modes, and Lighthouse scores of the entry page.
// Prints one JSON object on stdout. Run inside a loopback-only namespace (see BENCHMARKS.md):
//   unshare -n sh -c 'ip link set lo up && node tests/e2e/bench.mjs [PEERBOX] [--runs N]'
// Lighthouse runs when $LIGHTHOUSE (its CLI, e.g. /tmp/lh/node_modules/.bin/lighthouse) exists.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pathJoin } from 'node:path';
import { resolve } from 'node:path';
import { startPeerbox } from './lib/server.mjs';
import { chromium } from 'playwright-core';
import { launchBrowser, newPerson, CHROMIUM, FLAGS } from './lib/browser.mjs';
import { pickRandomRoom, join, tid } from './lib/app.mjs';

const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const RUNS = runsAt >= 0 ? Number(args.splice(runsAt, 2)[1]) : 5;
if (args[0]) process.env.PEERBOX_BIN = resolve(args[0]);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x) => Math.round(x);

/**
 * One run: Ann is in a fresh room; Bob opens the room link, and the page itself notes the time
 * of the Join click and of the first decoded remote frame (polled every 5 ms in the page).
 */
async function timeToFirstFrame(browser, base, query) {
  const ann = await newPerson(browser, 'bench-ann');
  const bob = await newPerson(browser, 'bench-bob');
  try {
    const room = await pickRandomRoom(ann.page, base, query);
    await join(ann.page, 'Ann');
    await bob.page.goto(`${base}/room/${room}${query}`);
    const name = bob.page.locator(tid('name-input'));
    if (await name.isEditable()) await name.fill('Bob');
    await bob.page.locator(tid('join-button')).waitFor({ state: 'visible' });
    return await bob.page.evaluate(() => new Promise((done, fail) => {
      const button = document.querySelector('[data-testid="join-button"]');
      const t0 = performance.now();
      const timer = setInterval(() => {
        for (const v of document.querySelectorAll('[data-testid="remote-tile"] video')) {
          if (v.getVideoPlaybackQuality().totalVideoFrames > 0) {
            clearInterval(timer);
            done(performance.now() - t0);
            return;
          }
        }
        if (performance.now() - t0 > 60_000) { clearInterval(timer); fail(new Error('no remote frame in 60 s')); }
      }, 5);
      button.click();
    }));
  } finally {
    await ann.close();
    await bob.close();
  }
}

/**
 * Lighthouse 12 no longer reports PWA installability; ask Chromium itself (the check behind
 * its install prompt) once the service worker controls the entry page.
 */
async function installability(base) {
  // A persistent profile: Chromium never offers to install from an incognito-like context.
  const profile = mkdtempSync(pathJoin(tmpdir(), 'peerbox-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: FLAGS, ignoreHTTPSErrors: true,
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${base}/`);
    await page.evaluate(() => navigator.serviceWorker?.ready);
    await page.reload();
    const cdp = await context.newCDPSession(page);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    const manifest = await cdp.send('Page.getAppManifest');
    return {
      installable: installabilityErrors.length === 0,
      errors: installabilityErrors.map((e) => e.errorId),
      manifestUrl: manifest.url,
      manifestErrors: manifest.errors.map((e) => e.message),
      serviceWorkerControlled: await page.evaluate(() => !!navigator.serviceWorker?.controller),
    };
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

function lighthouse(url) {
  const cli = process.env.LIGHTHOUSE;
  if (!cli || !existsSync(cli)) return Promise.resolve({ skipped: 'set LIGHTHOUSE to the lighthouse CLI to measure' });
  const dir = mkdtempSync(pathJoin(tmpdir(), 'peerbox-lh-'));
  const out = pathJoin(dir, 'report.json');
  return new Promise((done) => {
    execFile(cli, [
      url, '--output=json', `--output-path=${out}`, '--quiet',
      `--chrome-path=${CHROMIUM}`,
      '--chrome-flags=--headless --no-sandbox --ignore-certificate-errors --disable-gpu',
      '--form-factor=mobile', '--screenEmulation.mobile',
    ], { env: { ...process.env, CHROME_PATH: CHROMIUM }, timeout: 300_000 }, (err, _stdout, stderr) => {
      try {
        const r = JSON.parse(readFileSync(out, 'utf8'));
        const score = (k) => (r.categories[k] ? Math.round(r.categories[k].score * 100) : null);
        const audit = (k) => r.audits[k];
        done({
          lighthouseVersion: r.lighthouseVersion,
          formFactor: r.configSettings.formFactor,
          throttling: r.configSettings.throttlingMethod,
          performance: score('performance'),
          accessibility: score('accessibility'),
          bestPractices: score('best-practices'),
          seo: score('seo'),
          pwa: score('pwa'),
          installable: audit('installable-manifest') ? audit('installable-manifest').score === 1 : 'not reported',
          transferBytes: audit('total-byte-weight')?.numericValue ?? null,
          firstContentfulPaintMs: round(audit('first-contentful-paint')?.numericValue ?? NaN),
          largestContentfulPaintMs: round(audit('largest-contentful-paint')?.numericValue ?? NaN),
          failedAudits: Object.values(r.audits)
            .filter((a) => a.score !== null && a.score < 0.9 && a.scoreDisplayMode !== 'informative' && a.scoreDisplayMode !== 'notApplicable')
            .map((a) => a.id),
          runtimeError: r.runtimeError?.message,
        });
      } catch (e) {
        done({ error: `${err?.message ?? e.message}\n${stderr}` });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

const server = await startPeerbox({ name: 'bench' });
const browser = await launchBrowser();
const result = { runs: RUNS, binary: process.env.PEERBOX_BIN, chromium: browser.version() };
try {
  for (const [mode, query] of [['host', ''], ['relay', '?relay=1']]) {
    const samples = [];
    for (let i = 0; i < RUNS; i++) samples.push(round(await timeToFirstFrame(browser, server.url, query)));
    result[`joinToFirstFrameMs_${mode}`] = { median: median(samples), samples };
  }
  result.installability = await installability(server.url);
  await browser.close();
  result.lighthouse = await lighthouse(`${server.url}/`);
} finally {
  await browser.close().catch(() => {});
  await server.stop();
}
process.stdout.write(JSON.stringify(result, null, 2) + '\n');
