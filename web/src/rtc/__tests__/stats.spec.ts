// Connection statistics from getStats() reports: rates between samples, the path, the quality.
import { describe, expect, it } from 'vitest'
import { qualityOf, summarize, type LinkStats, type StatEntry } from '../stats'

const report = (o: { bytesIn: number; packets: number; lost: number; bytesOut?: number; local: string; remote: string; protocol?: string; relayProtocol?: string; rtt?: number }): StatEntry[] => [
  { type: 'transport', id: 'T', selectedCandidatePairId: 'P' },
  { type: 'candidate-pair', id: 'P', localCandidateId: 'L', remoteCandidateId: 'R', currentRoundTripTime: o.rtt ?? 0.05, nominated: true, state: 'succeeded' },
  { type: 'local-candidate', id: 'L', candidateType: o.local, protocol: o.protocol ?? 'udp', relayProtocol: o.relayProtocol },
  { type: 'remote-candidate', id: 'R', candidateType: o.remote },
  { type: 'inbound-rtp', id: 'V', kind: 'video', bytesReceived: o.bytesIn * 0.9, packetsReceived: o.packets * 0.8, packetsLost: o.lost, frameWidth: 640, frameHeight: 480, framesPerSecond: 30 },
  { type: 'inbound-rtp', id: 'A', kind: 'audio', bytesReceived: o.bytesIn * 0.1, packetsReceived: o.packets * 0.2, packetsLost: 0 },
  { type: 'outbound-rtp', id: 'O', kind: 'video', bytesSent: o.bytesOut ?? 0 },
]

describe('summarize', () => {
  it('gives rates and loss between two samples, and the direct path', () => {
    const a = summarize(report({ bytesIn: 0, packets: 0, lost: 0, local: 'host', remote: 'srflx' }), null, 1000)
    expect(a).toMatchObject({ inKbps: null, loss: null, path: 'direct', transport: 'udp', width: 640, height: 480, rttMs: 50 })
    const b = summarize(report({ bytesIn: 250_000, packets: 1000, lost: 10, bytesOut: 125_000, local: 'host', remote: 'srflx' }), a, 3000)
    expect(b).toMatchObject({ inKbps: 1000, outKbps: 500, path: 'direct' })
    expect(b.loss).toBeCloseTo(10 / 1010)
  })

  it.each([
    ['relay', 'host', 'tls', 'relay', 'tls'],
    ['host', 'relay', undefined, 'relay', 'udp'],
    ['srflx', 'prflx', undefined, 'direct', 'udp'],
  ])('local %s / remote %s (relay over %s) is %s over %s', (local, remote, relayProtocol, path, transport) => {
    expect(summarize(report({ bytesIn: 0, packets: 0, lost: 0, local, remote, relayProtocol }), null, 0)).toMatchObject({ path, transport })
  })

  it('has no path before a pair is chosen', () => {
    expect(summarize([{ type: 'inbound-rtp', id: 'V', kind: 'video', bytesReceived: 5 }], null, 0).path).toBe('unknown')
  })
})

describe('qualityOf', () => {
  const s = (loss: number | null, rttMs: number | null, path: LinkStats['path'] = 'direct') => ({ loss, rttMs, path }) as LinkStats
  it.each([
    [s(0, 40), 'good'],
    [s(0.019, 299), 'good'],
    [s(0.02, 40), 'fair'],
    [s(0, 300), 'fair'],
    [s(0.08, 40), 'poor'],
    [s(0, 700), 'poor'],
    [s(null, null), 'unknown'],
    [s(0, 40, 'unknown'), 'unknown'],
    [null, 'unknown'],
  ] as const)('%j -> %s', (stats, want) => expect(qualityOf(stats)).toBe(want))
})
