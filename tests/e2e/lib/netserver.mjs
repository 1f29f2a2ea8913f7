// Owns peerbox inside the simulated internet of lib/netns.mjs: the config an admin writes for
// it (the name and the public address, everything else the shipped defaults), the process in
// the server's namespace, started until it serves and stopped by its own PID, and the hooks that
// give a network test file its internet and server.

import { before, after } from 'node:test';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, createWriteStream, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as net from './netns.mjs';
import { binaryPath } from './server.mjs';
import { OUT_DIR } from './paths.mjs';
import { waitFor } from './app.mjs';

/**
 * What an admin writes: the name and the public address. Everything else is the shipped
 * default (TURN on 3478 and on 443, the default peer policy, quotas sized from the room
 * capacity, `rooms.sfu_from` 3), with IPv6 listeners beside; rooms of 4 so that a full one fits
 * this machine. `sfu` adds `[sfu] enabled = true` (the SFU on its default port).
 */
export function adminConfig({ sfu = false } = {}) {
  return `hostname = "${net.HOST}"
shutdown_timeout_secs = 2
[rooms]
capacity = 4
[https]
listen = ["0.0.0.0:443", "[::]:443"]
[http]
listen = ["0.0.0.0:80", "[::]:80"]
[turn]
listen = ["0.0.0.0:3478", "[::]:3478"]
external_ip = "${net.SERVER_V4}"
${sfu ? '[sfu]\nenabled = true\n' : ''}`;
}

/**
 * Runs peerbox in the server's namespace with `config` (a temporary dir of its own), its output
 * in out/peerbox-NAME.log, until that log says it serves. `stop()` ends only this PID (`ip netns
 * exec` execs the binary in place) and removes the dir.
 */
export async function startInServerNs(config, name) {
  const dir = mkdtempSync(join(tmpdir(), `peerbox-${name}-`));
  mkdirSync(join(dir, 'ssl'));
  writeFileSync(join(dir, 'config.toml'), config);
  mkdirSync(OUT_DIR, { recursive: true });
  const logPath = join(OUT_DIR, `peerbox-${name}.log`);
  const log = createWriteStream(logPath);
  const child = spawn('ip', ['netns', 'exec', net.NS.srv, binaryPath(), '--config', join(dir, 'config.toml')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', PEERBOX_LOG: process.env.PEERBOX_LOG ?? 'info' },
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = false;
  const exit = new Promise((r) => child.once('exit', () => { exited = true; r(); }));
  // Should the test process die first, take the server it started with it.
  const reap = () => { if (!exited) child.kill('SIGKILL'); };
  process.once('exit', reap);
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await Promise.race([exit, new Promise((r) => setTimeout(r, 5_000))]);
      if (!exited) child.kill('SIGKILL');
    }
    process.removeListener('exit', reap);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => {
      if (exited) throw new Error(`peerbox exited at start; see ${logPath}`);
      try {
        return readFileSync(logPath, 'utf8').includes('peerbox is serving');
      } catch {
        return false;
      }
    }, { timeout: 30_000, what: 'peerbox to serve in its namespace' });
  } catch (e) {
    await stop();
    throw e;
  }
  return { logPath, stop };
}

/**
 * Registers a network test file's hooks: before its tests the server's side of the internet
 * (net.up()) and peerbox in it (`adminConfig({ sfu })`, log out/peerbox-NAME.log), after them
 * all of it gone and `onEnd` run (e.g. to write what was measured). `env.skip` says why the
 * file cannot run here (false when it can); `env.dir` is a temporary dir for Chromium wrappers.
 */
export function useNetServer(name, { sfu = false, onEnd = () => {} } = {}) {
  const env = { skip: !net.available() && 'needs root with iproute2, iptables and tc (network namespaces)', dir: null, server: null };
  before(async () => {
    if (env.skip) return;
    env.dir = mkdtempSync(join(tmpdir(), `peerbox-${name}-browsers-`));
    net.up();
    env.server = await startInServerNs(adminConfig({ sfu }), name);
  }, { timeout: 60_000 });
  after(async () => {
    if (env.skip) return;
    await env.server?.stop();
    net.down();
    if (env.dir) rmSync(env.dir, { recursive: true, force: true });
    onEnd();
  }, { timeout: 30_000 });
  return env;
}
