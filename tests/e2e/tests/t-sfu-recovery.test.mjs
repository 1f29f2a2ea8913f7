// (t) The SFU connection survives an outage: two people in an SFU room (`sfu_from = 1`), then the
// SFU's UDP port and new TCP connections to the HTTPS port (ICE-TCP) are blocked with iptables
// (inside the test's own `unshare -n` namespace, so only loopback is touched) for 20 s: longer
// than the 15 s after which the server's ICE says Disconnected. Once it is open again each sees
// the other's video playing through the SFU (the server kept them, or the client joined the SFU
// anew), with no reload. With UDP blocked alone the video went on (over ICE-TCP on the HTTPS
// port); an ICE-TCP connection open before the cut may still carry it: the test logs whether the
// video stopped, and any RTP on the m-lines a member only sends on. Small fake video spares the
// two cores.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { useFixture } from '../lib/fixture.mjs';
import { DESKTOP } from '../lib/browser.mjs';
import { remoteVideoStats, sleep, startCall, tid, waitFor, waitForPlayingVideos } from '../lib/app.mjs';

const fx = useFixture({ name: 't', sfu: true, extraRooms: 'sfu_from = 1' });

/**
 * Per open RTCPeerConnection with a bundle of several m-lines (the SFU's): each transceiver's mid,
 * its negotiated direction and the RTP packets received on it.
 */
function sfuLines(page) {
  return page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs ?? []) {
      if (pc.connectionState === 'closed' || pc.getTransceivers().length < 3) continue;
      const inbound = new Map();
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.mid) inbound.set(s.mid, (inbound.get(s.mid) ?? 0) + (s.packetsReceived ?? 0));
      });
      out.push(pc.getTransceivers().filter((t) => t.mid).map((t) => ({ mid: t.mid, dir: t.currentDirection, packets: inbound.get(t.mid) ?? 0 })));
    }
    return out;
  });
}

/** The iptables rules that cut the SFU's UDP port both ways, and new TCP connections to 443's stand-in. */
function rules(port, https) {
  return [
    ['INPUT', '-p', 'udp', '--dport', String(port), '-j', 'DROP'],
    ['OUTPUT', '-p', 'udp', '--sport', String(port), '-j', 'DROP'],
    ['INPUT', '-p', 'tcp', '--dport', String(https), '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP'],
  ];
}
let added = [];
function block(port, https) {
  for (const r of rules(port, https)) {
    execFileSync('iptables', ['-A', ...r]);
    added.push(r);
  }
}
function unblock() {
  for (const r of added) execFileSync('iptables', ['-D', ...r]);
  added = [];
}
after(() => unblock());

const viaSfu = (page) => waitFor(async () => {
  const via = await page.locator(tid('remote-tile')).evaluateAll((els) => els.map((e) => e.getAttribute('data-via')));
  return via.length === 1 && via[0] === 'sfu' ? via : null;
}, { timeout: 45_000, what: 'the tile shown through the SFU' });

test('a 20 s outage of the SFU port: video comes back through the SFU', { timeout: 240_000 }, async () => {
  // This test changes the firewall: only inside a namespace of its own (unshare -n).
  const ns = execFileSync('ip', ['-o', 'link']).toString();
  assert.ok(!/\b(eth|en|wl)\w*:/.test(ns), 'run inside `unshare -n` (this test changes iptables)');
  const port = Number(/\[sfu\][^[]*listen = "127\.0\.0\.1:(\d+)"/.exec(readFileSync(fx.server.configPath, 'utf8'))?.[1]);
  assert.ok(port > 0, 'the SFU port from the config');

  const people = [await fx.person('t-ann', DESKTOP), await fx.person('t-bob', DESKTOP)];
  for (const p of people) {
    await p.context.addInitScript(() => {
      const md = navigator.mediaDevices;
      const orig = md.getUserMedia.bind(md);
      md.getUserMedia = (c = {}) => orig(c.video ? { ...c, video: { width: 320, height: 240, frameRate: 15 } } : c);
    });
  }
  await startCall(fx.base, people);
  await Promise.all(people.map((p) => viaSfu(p.page)));
  await Promise.all(people.map((p) => waitForPlayingVideos(p.page, 1)));

  // What arrives on the m-lines a member only sends on (its mic, camera, screen): logged, not
  // asserted. In 1 of 3 runs Chromium counted 25 inbound RTP packets on its send-only camera
  // m-line (issue 11 notes: not found yet whether the server's padding or probes land there).
  for (const p of people) {
    const lines = await sfuLines(p.page);
    assert.ok(lines.length >= 1, `${p.label} has an SFU connection`);
    const onSendOnly = lines.flat().filter((l) => l.dir === 'sendonly' && l.packets > 0);
    console.log(`# ${p.label}: RTP on send-only m-lines ${JSON.stringify(onSendOnly)} (all: ${JSON.stringify(lines)})`);
  }

  block(port, fx.server.httpsPort);
  const t0 = Date.now();
  await sleep(19_000);
  const during = await Promise.all(people.map((p) => remoteVideoStats(p.page)));
  await sleep(1_000);
  const during2 = await Promise.all(people.map((p) => remoteVideoStats(p.page)));
  people.forEach((p, i) => {
    const [a, b] = [Object.values(during[i])[0], Object.values(during2[i])[0]];
    console.log(`# ${p.label} at the end of the cut: ${(b?.frames ?? 0) - (a?.frames ?? 0)} frames in 1 s`);
  });
  unblock();
  const t1 = Date.now();
  await Promise.all(people.map((p) => waitForPlayingVideos(p.page, 1, 90_000)));
  await Promise.all(people.map((p) => viaSfu(p.page)));
  console.log(`# blocked ${t1 - t0} ms; video playing again at both ${Date.now() - t1} ms after the port opened`);
});
