// (c) A 1 MiB file arrives intact at the other side, with progress shown on both sides.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useFixture } from '../lib/fixture.mjs';
import { startCall, tid, waitFor, ensureChatOpen } from '../lib/app.mjs';

const fx = useFixture({ name: 'c' });

test('a 1 MiB file reaches the other member with the same SHA-256', { timeout: 150_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'peerbox-e2e-file-'));
  try {
    const bytes = randomBytes(1024 * 1024);
    const sha = createHash('sha256').update(bytes).digest('hex');
    const name = `random-${Date.now()}.bin`;
    const path = join(dir, name);
    writeFileSync(path, bytes);

    const people = [await fx.person('c-ann'), await fx.person('c-bob')];
    const [ann, bob] = people;
    const { ids } = await startCall(fx.base, people, { waitVideo: false });
    await ensureChatOpen(ann.page);
    const target = ann.page.locator(tid('chat-target'));
    if (await target.count()) await target.selectOption(ids[1]);
    await ann.page.locator(tid('file-input')).setInputFiles(path);

    const link = bob.page.locator(`${tid('file-download')}[data-name="${name}"]`);
    await link.waitFor({ state: 'visible', timeout: 60_000 });
    assert.equal((await link.getAttribute('data-sha256'))?.toLowerCase(), sha, 'data-sha256 of the received file');

    const [download] = await Promise.all([bob.page.waitForEvent('download'), link.click()]);
    const saved = join(dir, 'downloaded.bin');
    await download.saveAs(saved);
    const got = readFileSync(saved);
    assert.equal(got.length, bytes.length, 'downloaded size');
    assert.equal(createHash('sha256').update(got).digest('hex'), sha, 'SHA-256 of the downloaded bytes');

    for (const p of people) {
      await waitFor(() => p.page.evaluate(() => window.__seenProgress), {
        timeout: 5_000,
        what: `${p.label} to have shown a file-progress element`,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
