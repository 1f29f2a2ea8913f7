// Owns the simulated internet of the network tests: Linux network namespaces linked by veth
// pairs, with addresses from the documentation ranges, routers with iptables (NAT, symmetric
// NAT, blocked UDP, only TCP 443) and a hosts file naming the server. Nothing is linked to the
// host's interfaces. Everything made here is deleted by down(). The names below start with
// `pbxm`, or with $PEERBOX_NETNS_PREFIX when set (a run beside a leftover one, or beside another
// checkout's). shapeDownlink() limits what reaches one client (tc tbf on its router's LAN port).
//
//   pbxm-srv (peerbox, 203.0.113.10, 2001:db8::10)
//       |
//   pbxm-inet (bridge: the "internet", 203.0.113.0/24, 2001:db8::/64)
//       |                                  |
//   pbxm-ra (203.0.113.21)             pbxm-rb (203.0.113.22)
//   LAN 192.168.1.0/24, 2001:db8:1::/64  LAN 192.168.2.0/24, 2001:db8:2::/64
//       |            |                      |
//   pbxm-ca (.10)  pbxm-ca2 (.11)        pbxm-cb (.10)

import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';

export const SERVER_V4 = '203.0.113.10';
export const SERVER_V6 = '2001:db8::10';
export const HOST = 'peerbox.test';
const P = process.env.PEERBOX_NETNS_PREFIX || 'pbxm';
// The prefix goes into namespace names, shell scripts and file names: keep it plain.
if (!/^[a-z][a-z0-9]{0,7}$/.test(P)) throw new Error(`PEERBOX_NETNS_PREFIX must be 1-8 lowercase letters or digits, got "${P}"`);
export const NS = { srv: `${P}-srv`, inet: `${P}-inet`, ra: `${P}-ra`, rb: `${P}-rb`, ca: `${P}-ca`, ca2: `${P}-ca2`, cb: `${P}-cb` };

function run(cmd, args, { quiet = false } = {}) {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 }).toString();
  } catch (e) {
    if (quiet) return '';
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.toString() || e.message}`);
  }
}
const ip = (...a) => run('ip', a);
const inNs = (ns, ...cmd) => run('ip', ['netns', 'exec', ns, ...cmd]);
const sh = (ns, script) => inNs(ns, 'sh', '-ec', script);

/** A veth pair from namespace `a` (named `an`) to namespace `b` (named `bn`). */
function link(a, an, b, bn) {
  ip('link', 'add', an, 'netns', a, 'type', 'veth', 'peer', 'name', bn, 'netns', b);
}

function hosts(ns, v4, v6) {
  const dir = `/etc/netns/${ns}`;
  mkdirSync(dir, { recursive: true });
  // Chromium asks for the fully qualified name (with the trailing dot) for STUN/TURN URLs.
  const lines = ['127.0.0.1 localhost', '::1 localhost'];
  if (v4) lines.push(`${SERVER_V4} ${HOST} ${HOST}.`);
  if (v6) lines.push(`${SERVER_V6} ${HOST} ${HOST}.`);
  writeFileSync(join(dir, 'hosts'), lines.join('\n') + '\n');
}

/** The fixed part: server and internet. */
export function up() {
  down();
  for (const ns of [NS.srv, NS.inet]) ip('netns', 'add', ns);
  sh(NS.inet, 'ip link set lo up; ip link add br0 type bridge; ip link set br0 up');
  link(NS.srv, 'eth0', NS.inet, 'srv');
  sh(NS.inet, 'ip link set srv master br0; ip link set srv up');
  sh(NS.srv, `ip link set lo up; ip link set eth0 up
    ip addr add ${SERVER_V4}/24 dev eth0
    ip -6 addr add ${SERVER_V6}/64 dev eth0 nodad
    ip -6 route add 2001:db8:1::/64 via 2001:db8::21
    ip -6 route add 2001:db8:2::/64 via 2001:db8::22`);
  hosts(NS.srv, true, true);
}

/**
 * The client side of one case: routers `ra` (and `rb`), their LANs and clients.
 * @param {{families: ('v4'|'v6')[], nat?: {ra?: 'cone'|'symmetric', rb?: 'cone'|'symmetric'},
 *          block?: {ra?: 'udp'|'only443', rb?: 'udp'|'only443'}, sameLan?: boolean}} spec
 * @returns {string[]} the two client namespaces
 */
export function clients(spec) {
  downClients();
  const v4 = spec.families.includes('v4');
  const v6 = spec.families.includes('v6');
  const sides = spec.sameLan ? [['ra', 1, [NS.ca, NS.ca2]]] : [['ra', 1, [NS.ca]], ['rb', 2, [NS.cb]]];
  for (const [r, n, cs] of sides) {
    const rns = NS[r];
    ip('netns', 'add', rns);
    link(rns, 'wan', NS.inet, r);
    sh(NS.inet, `ip link set ${r} master br0; ip link set ${r} up`);
    sh(rns, `ip link set lo up; ip link set wan up
      ip link add lan type bridge; ip link set lan up
      sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
      ip addr add 203.0.113.2${n}/24 dev wan
      ip -6 addr add 2001:db8::2${n}/64 dev wan nodad
      ip -6 route add 2001:db8:${3 - n}::/64 via 2001:db8::2${3 - n}
      ip addr add 192.168.${n}.1/24 dev lan
      ip -6 addr add 2001:db8:${n}::1/64 dev lan nodad`);
    cs.forEach((c, i) => {
      ip('netns', 'add', c);
      link(c, 'eth0', rns, `c${i}`);
      sh(rns, `ip link set c${i} master lan; ip link set c${i} up`);
      const host = 10 + i;
      let cfg = 'ip link set lo up; ip link set eth0 up\n';
      if (v4) cfg += `ip addr add 192.168.${n}.${host}/24 dev eth0; ip route add default via 192.168.${n}.1\n`;
      if (v6) cfg += `ip -6 addr add 2001:db8:${n}::${host}/64 dev eth0 nodad; ip -6 route add default via 2001:db8:${n}::1\n`;
      else cfg += 'sysctl -qw net.ipv6.conf.all.disable_ipv6=1\n';
      sh(c, cfg);
      hosts(c, v4, v6);
    });
    const nat = spec.nat?.[r];
    // MASQUERADE keeps the source port where it can (a "cone" NAT as home routers behave);
    // --random-fully picks a new port per destination: a symmetric NAT.
    if (nat) {
      sh(rns, `iptables -t nat -A POSTROUTING -o wan -j MASQUERADE${nat === 'symmetric' ? ' --random-fully' : ''}`);
      // As home routers do: unsolicited packets to the router itself are dropped. Besides
      // being realistic this keeps them from leaving a conntrack entry behind that makes the
      // NAT pick another port for the client's own hole-punching packet (Linux confirms an
      // entry only for a packet that is not dropped).
      sh(rns, 'iptables -A INPUT -i wan -m conntrack --ctstate NEW -j DROP');
    }
    const block = spec.block?.[r];
    for (const t of ['iptables', 'ip6tables']) {
      if (block === 'udp') sh(rns, `${t} -A FORWARD -i lan -p udp -j DROP`);
      if (block === 'only443') {
        sh(rns, `${t} -A FORWARD -i lan -p tcp --dport 443 -j ACCEPT; ${t} -A FORWARD -i lan -j DROP`);
      }
    }
  }
  const clientsMade = spec.sameLan ? [NS.ca, NS.ca2] : [NS.ca, NS.cb];
  // IPv6 link-local addresses go through duplicate address detection; a browser started
  // before it ends sees the network change under it (ERR_NETWORK_CHANGED on its first load).
  for (const ns of [...clientsMade, NS.ra, NS.rb]) settle(ns);
  return clientsMade;
}

/** The router and its LAN-side port (veth) each client namespace hangs off, as clients() links them. */
const PORT = { [NS.ca]: [NS.ra, 'c0'], [NS.ca2]: [NS.ra, 'c1'], [NS.cb]: [NS.rb, 'c0'] };

/**
 * Limits what reaches client namespace `ns` to `kbit` kbit/s: a token bucket on its router's
 * LAN port, where packets leave towards it (a thin downlink; its uplink is untouched). The
 * queue holds `latencyMs` of packets; what does not fit is dropped, as a congested DSL line does.
 */
export function shapeDownlink(ns, kbit, latencyMs = 200) {
  const [router, port] = PORT[ns];
  sh(router, `tc qdisc replace dev ${port} root tbf rate ${kbit}kbit burst 4kb latency ${latencyMs}ms`);
}

/** Removes shapeDownlink()'s limit. */
export function unshapeDownlink(ns) {
  const [router, port] = PORT[ns];
  run('ip', ['netns', 'exec', router, 'tc', 'qdisc', 'del', 'dev', port, 'root'], { quiet: true });
}

function settle(ns) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const tentative = run('ip', ['-n', ns, '-6', 'addr', 'show', 'tentative'], { quiet: true });
    if (!tentative.trim()) return;
    execFileSync('sleep', ['0.1']);
  }
}

export function downClients() {
  // The routers of the next case reuse the addresses with new MAC addresses: the server must
  // not keep sending to the old ones (IPv6 neighbour entries linger for seconds).
  run('ip', ['-n', NS.srv, 'neigh', 'flush', 'all'], { quiet: true });
  // A namespace goes away only once nothing holds it (a browser still exiting does), so the
  // links are deleted first: the next case can make them again at once.
  for (const l of ['ra', 'rb']) run('ip', ['-n', NS.inet, 'link', 'del', l], { quiet: true });
  for (const ns of [NS.ra, NS.rb]) {
    for (const l of ['c0', 'c1']) run('ip', ['-n', ns, 'link', 'del', l], { quiet: true });
  }
  for (const ns of [NS.ca, NS.ca2, NS.cb, NS.ra, NS.rb]) {
    run('ip', ['netns', 'del', ns], { quiet: true });
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
}

export function down() {
  downClients();
  for (const ns of [NS.srv, NS.inet]) {
    run('ip', ['netns', 'del', ns], { quiet: true });
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
}

/** A script that runs Chromium inside `ns`, for playwright's executablePath. */
export function chromiumIn(ns, dir) {
  const path = join(dir, `chromium-${ns}`);
  writeFileSync(path, `#!/bin/sh\nexec ip netns exec ${ns} /usr/bin/chromium "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

/** Whether this machine can make namespaces (root, iproute2, iptables). */
export function available() {
  try {
    run('ip', ['netns', 'add', `${P}-probe`]);
    run('ip', ['netns', 'exec', `${P}-probe`, 'iptables', '-L']);
    return true;
  } catch {
    return false;
  } finally {
    run('ip', ['netns', 'del', `${P}-probe`], { quiet: true });
  }
}
