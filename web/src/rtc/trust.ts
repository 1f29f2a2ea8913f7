// Verifiable end-to-end encryption for mesh calls. Browser-to-browser media is already encrypted
// (DTLS-SRTP), but each side learns the other's DTLS certificate fingerprint from the SDP that the
// server relays: a server (or anyone in its place) could swap it and sit in the middle. The room
// secret travels in the link's fragment (`/room/<id>#<secret>`), which browsers never send to a
// server; each member signs its own fingerprints and session id with it (HMAC-SHA-256, WebCrypto),
// and a receiver checks that before it applies an offer or answer. A short safety code made from
// both ends' fingerprints lets two people compare, aloud, that they see the same pair.

/** A new room secret: 16 random bytes, base64url (22 characters). */
export function newRoomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return base64url(bytes)
}

/** Whether a link fragment (without '#') looks like a room secret. */
export function isRoomSecret(s: string): boolean {
  return /^[A-Za-z0-9_-]{22,64}$/.test(s)
}

function base64url(bytes: Uint8Array): string {
  let bin = ''
  for (const b of bytes) bin += String.fromCharCode(b)
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

const enc = new TextEncoder()

/** The DTLS fingerprints an SDP announces, as `algorithm value` in lowercase, sorted, once each. */
export function fingerprintsOf(sdp: string): string[] {
  const out = new Set<string>()
  for (const line of sdp.split(/\r?\n/)) {
    const m = /^a=fingerprint:(\S+)\s+([0-9A-Fa-f:]+)\s*$/.exec(line)
    if (m) out.add(`${m[1]!.toLowerCase()} ${m[2]!.toLowerCase()}`)
  }
  return [...out].sort()
}

/** Fingerprints of a certificate, in the same form as fingerprintsOf gives. */
export function certificateFingerprints(cert: RTCCertificate): string[] {
  return [...new Set(cert.getFingerprints().map((f) => `${(f.algorithm ?? '').toLowerCase()} ${(f.value ?? '').toLowerCase()}`))].sort()
}

/** What a member signs: the room, its session id and its fingerprints. */
function statement(room: string, sessionId: string, fingerprints: string[]): Uint8Array {
  return enc.encode(`peerbox-dtls-v1\n${room}\n${sessionId}\n${fingerprints.join(',')}`)
}

/** The room secret as an HMAC key, bound to one room. */
export class RoomTrust {
  private constructor(private readonly key: CryptoKey, readonly room: string) {}

  static async of(secret: string, room: string): Promise<RoomTrust> {
    const key = await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify'])
    return new RoomTrust(key, room)
  }

  /** The tag a member sends beside its offers and answers. */
  async sign(sessionId: string, fingerprints: string[]): Promise<string> {
    const mac = await crypto.subtle.sign('HMAC', this.key, statement(this.room, sessionId, fingerprints) as BufferSource)
    return base64url(new Uint8Array(mac))
  }

  /** Whether `tag` is this room's signature of that member's fingerprints (constant time: WebCrypto's verify). */
  async verify(sessionId: string, fingerprints: string[], tag: unknown): Promise<boolean> {
    if (typeof tag !== 'string' || !fingerprints.length || !/^[A-Za-z0-9_-]{43}$/.test(tag)) return false
    const bin = atob(tag.replace(/-/g, '+').replace(/_/g, '/') + '=')
    const mac = Uint8Array.from(bin, (c) => c.charCodeAt(0))
    return crypto.subtle.verify('HMAC', this.key, mac as BufferSource, statement(this.room, sessionId, fingerprints) as BufferSource)
  }
}

/**
 * A six-digit code both ends compute the same way from both ends' fingerprints (in either order),
 * shown as `123 456`: if someone swapped a fingerprint, the two people read different codes.
 */
export async function safetyCode(a: string[], b: string[]): Promise<string> {
  const pair = [a.join(','), b.join(',')].sort().join('|')
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', enc.encode(`peerbox-code-v1|${pair}`)))
  const n = ((digest[0]! << 24) | (digest[1]! << 16) | (digest[2]! << 8) | digest[3]!) >>> 0
  const code = String(n % 1_000_000).padStart(6, '0')
  return `${code.slice(0, 3)} ${code.slice(3)}`
}
