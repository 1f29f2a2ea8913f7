// Owns the peerbox process of a test: a temporary config and ssl dir, free loopback ports,
// start, wait until HTTPS answers, and stop (only the PID this helper started).

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, createWriteStream, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import https from 'node:https';
import { OUT_DIR } from './paths.mjs';

/** The binary under test: $PEERBOX_BIN, else target/release/peerbox of this repository. */
export function binaryPath() {
  return resolve(process.env.PEERBOX_BIN ?? new URL('../../../target/release/peerbox', import.meta.url).pathname);
}

export function freeTcpPort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** A port free for both TCP and UDP (TURN listens on both). */
async function freeTurnPort() {
  for (let i = 0; i < 50; i++) {
    const port = await freeTcpPort();
    const udpFree = await new Promise((ok) => {
      const u = dgram.createSocket('udp4');
      u.once('error', () => ok(false));
      u.bind(port, '127.0.0.1', () => u.close(() => ok(true)));
    });
    if (udpFree) return port;
  }
  throw new Error('no port free for both TCP and UDP');
}

let instances = 0;

/**
 * Starts peerbox on loopback with its own temporary config.
 * `extraTurn` adds lines to [turn]; `extra` adds sections at the end (e.g. [cluster]), or is a
 * function of `{httpsPort}` that returns them (a cluster node names its own address).
 * `sfu`: turn the built-in SFU on, on a free loopback UDP port (big rooms go through it);
 * `extraSfu` adds lines to its [sfu] section.
 * @param {{capacity?: number, name?: string, extraRooms?: string, extraTurn?: string, sfu?: boolean, extraSfu?: string,
 *          extra?: string | ((ports: {httpsPort: number}) => string)}} opts
 */
export async function startPeerbox(opts = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'peerbox-e2e-'));
  mkdirSync(join(dir, 'ssl'));
  // The kernel may hand a port it just gave out again once it is closed: two listeners on one
  // port are a config error (exit 2), so each port is a new one.
  const taken = new Set();
  const fresh = async (pick) => {
    for (let i = 0; i < 20; i++) {
      const port = await pick();
      if (taken.has(port)) continue;
      taken.add(port);
      return port;
    }
    throw new Error('no distinct free port');
  };
  const [httpsPort, httpPort, turnPort] = [await fresh(freeTcpPort), await fresh(freeTcpPort), await fresh(freeTurnPort)];
  const sfuPort = opts.sfu ? await fresh(freeTurnPort) : 0;
  // Distinct relay ranges so two servers in one test never compete for a relay port.
  const base = 41000 + (((process.pid % 8) * 4 + instances++) % 32) * 500;
  const config = `# written by tests/e2e/lib/server.mjs
hostname = "127.0.0.1"
shutdown_timeout_secs = 2

[https]
listen = ["127.0.0.1:${httpsPort}"]

[http]
listen = ["127.0.0.1:${httpPort}"]

[tls]
dir = "ssl"
watch_interval_secs = 0

[metrics]
listen = []

[rooms]
capacity = ${opts.capacity ?? 10}
${opts.extraRooms ?? ''}

[turn]
listen = ["127.0.0.1:${turnPort}"]
relay_ports = "${base}-${base + 499}"
allow_loopback_peers = true
${opts.extraTurn ?? ''}
${opts.sfu ? `
[sfu]
enabled = true
listen = "127.0.0.1:${sfuPort}"
${opts.extraSfu ?? ''}
` : ''}
${typeof opts.extra === 'function' ? opts.extra({ httpsPort }) : (opts.extra ?? '')}
`;
  const configPath = join(dir, 'config.toml');
  writeFileSync(configPath, config);
  mkdirSync(OUT_DIR, { recursive: true });
  const url = `https://127.0.0.1:${httpsPort}`;
  const name = opts.name ?? 'server';
  let proc = await launch(configPath, url, name);

  return {
    url,
    httpsPort,
    turnPort,
    dir,
    configPath,
    get logPath() { return proc.logPath; },
    get pid() { return proc.pid; },
    /**
     * Stops the process as `systemctl restart` would (SIGTERM, graceful drain) and starts it again
     * on the same ports, config and ssl dir. `whileDown` runs once it has stopped; it stays down
     * for at least `awayMs`.
     */
    async restart(awayMs = 0, whileDown = async () => {}) {
      await proc.stop();
      const away = new Promise((r) => setTimeout(r, awayMs));
      await whileDown();
      await away;
      proc = await launch(configPath, url, name);
    },
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs the binary with `configPath` until it answers on `url`; `stop()` ends only this PID. */
async function launch(configPath, url, name) {
  const logPath = join(OUT_DIR, `peerbox-${name}-${process.pid}-${++launches}.log`);
  const log = createWriteStream(logPath);
  const bin = binaryPath();
  const child = spawn(bin, ['--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', PEERBOX_LOG: process.env.PEERBOX_LOG ?? 'info' },
  });
  // Both into one file, which ends when both have: by default the first to end would end it,
  // and what the other says after (a refused config on stderr) would be lost.
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const written = new Promise((ok) => child.once('close', () => log.end(ok)));
  let exited = null;
  const exit = new Promise((ok) => child.once('exit', (code, sig) => { exited = { code, sig }; ok(exited); }));
  child.once('error', (e) => { exited = { error: e }; });
  // Should this test process die first, take the server it started with it.
  const reap = () => { if (!exited) child.kill('SIGKILL'); };
  process.once('exit', reap);

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) {
      await Promise.race([written, new Promise((r) => setTimeout(r, 2_000))]);
      const said = readFileSync(logPath, 'utf8').trim().split('\n').slice(-8).join(' | ');
      throw new Error(`peerbox (${bin}) exited at startup: ${JSON.stringify(exited)}: ${said}; log: ${logPath}`);
    }
    if (await answers(url)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`peerbox did not answer on ${url} within 30 s; log: ${logPath}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    logPath,
    pid: child.pid,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => { if (!exited) child.kill('SIGKILL'); }, 5_000);
        await exit;
        clearTimeout(t);
      }
      process.removeListener('exit', reap);
    },
  };
}

let launches = 0;

function answers(url) {
  return new Promise((ok) => {
    const req = https.get(url + '/', { rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      res.resume();
      ok(res.statusCode > 0 && res.statusCode < 500);
    });
    req.on('error', () => ok(false));
    req.on('timeout', () => { req.destroy(); ok(false); });
  });
}
