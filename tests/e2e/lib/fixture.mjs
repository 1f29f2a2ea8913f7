// One peerbox and one Chromium per test file, and every person's context closed after each test.

import { before, after, afterEach } from 'node:test';
import { startPeerbox } from './server.mjs';
import { launchBrowser, newPerson } from './browser.mjs';

/** Registers the hooks; returns an object whose fields are filled once `before` ran. */
export function useFixture(serverOpts = {}) {
  const fx = { server: null, browser: null, people: [] };
  fx.person = async (label, device, extra) => {
    const p = await newPerson(fx.browser, label, device, extra);
    fx.people.push(p);
    return p;
  };
  before(async () => {
    fx.server = await startPeerbox(serverOpts);
    fx.browser = await launchBrowser();
    fx.base = fx.server.url;
  }, { timeout: 90_000 });
  afterEach(async () => {
    await Promise.allSettled(fx.people.map((p) => p.close()));
    fx.people = [];
  }, { timeout: 60_000 });
  after(async () => {
    await fx.browser?.close().catch(() => {});
    await fx.server?.stop();
  }, { timeout: 60_000 });
  return fx;
}
