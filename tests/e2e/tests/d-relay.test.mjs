// (d) With ?relay=1 the call goes through peerbox's own TURN server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useFixture } from '../lib/fixture.mjs';
import { startCall, inboundStats, waitFor, sleep } from '../lib/app.mjs';

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
