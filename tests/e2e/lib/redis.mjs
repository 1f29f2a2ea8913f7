// Owns the redis-server of a cluster test (Debian's package): a free loopback port, no
// persistence, redis-cli against it, and stop (only the PID this helper started).

import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';
import { freeTcpPort } from './server.mjs';

export async function startRedis() {
  const port = await freeTcpPort();
  const child = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  let exited = false;
  let failed = null;
  const exit = new Promise((ok) => child.once('exit', () => { exited = true; ok(); }));
  child.once('error', (e) => { failed = e; exited = true; });
  const reap = () => { if (!exited) child.kill('SIGKILL'); };
  process.once('exit', reap);
  const deadline = Date.now() + 10_000;
  while (!(await listening(port))) {
    if (failed) throw new Error(`redis-server (Debian package redis-server) did not start: ${failed.message}`);
    if (exited || Date.now() > deadline) throw new Error(`redis-server did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    /** redis-cli's answer to `args`, trimmed. */
    cli: (...args) => execFileSync('redis-cli', ['-p', String(port), ...args.map(String)], { encoding: 'utf8' }).trim(),
    async stop() {
      if (!exited) child.kill('SIGTERM');
      if (!failed) await exit;
      process.removeListener('exit', reap);
    },
  };
}

function listening(port) {
  return new Promise((ok) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); ok(true); });
    s.once('error', () => ok(false));
  });
}
