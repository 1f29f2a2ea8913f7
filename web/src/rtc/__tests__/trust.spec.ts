// The room secret's checks: fingerprints read from SDP, signatures bound to room, member and
// fingerprints, and a safety code that both ends compute alike.
import { describe, expect, it } from 'vitest'
import { fingerprintsOf, isRoomSecret, newRoomSecret, RoomTrust, safetyCode } from '../trust'

const FP = 'AB:CD:EF:01'
const sdp = (fp: string) => `v=0\r\na=group:BUNDLE 0 1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:sha-256 ${fp}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fingerprint:sha-256 ${fp}\r\n`

describe('room trust', () => {
  it('makes secrets that look like secrets', () => {
    const s = newRoomSecret()
    expect(s).toMatch(/^[A-Za-z0-9_-]{22}$/)
    expect(isRoomSecret(s)).toBe(true)
    expect(isRoomSecret('')).toBe(false)
    expect(isRoomSecret('short')).toBe(false)
    expect(newRoomSecret()).not.toBe(s)
  })

  it('reads each fingerprint once, normalised', () => {
    expect(fingerprintsOf(sdp(FP))).toEqual(['sha-256 ab:cd:ef:01'])
    expect(fingerprintsOf('v=0\r\n')).toEqual([])
  })

  it('accepts only the signature of this room, member and fingerprint', async () => {
    const secret = newRoomSecret()
    const trust = await RoomTrust.of(secret, 'room-1')
    const fps = fingerprintsOf(sdp(FP))
    const tag = await trust.sign('alice', fps)
    expect(await trust.verify('alice', fps, tag)).toBe(true)
    expect(await trust.verify('mallory', fps, tag)).toBe(false)
    expect(await trust.verify('alice', fingerprintsOf(sdp('AB:CD:EF:02')), tag)).toBe(false)
    expect(await trust.verify('alice', fps, undefined)).toBe(false)
    expect(await trust.verify('alice', fps, 'x'.repeat(43))).toBe(false)
    expect(await (await RoomTrust.of(secret, 'room-2')).verify('alice', fps, tag)).toBe(false)
    expect(await (await RoomTrust.of(newRoomSecret(), 'room-1')).verify('alice', fps, tag)).toBe(false)
  })

  it('gives both ends the same safety code, and another one for another pair', async () => {
    const a = ['sha-256 aa'], b = ['sha-256 bb'], c = ['sha-256 cc']
    const code = await safetyCode(a, b)
    expect(code).toMatch(/^\d{3} \d{3}$/)
    expect(await safetyCode(b, a)).toBe(code)
    expect(await safetyCode(a, c)).not.toBe(code)
  })
})
