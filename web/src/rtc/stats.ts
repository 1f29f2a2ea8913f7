// Connection statistics of one peer connection, from getStats(): what arrives (bitrate, picture
// size, packet loss), the round trip, and the path (direct or relayed, over UDP, TCP or TLS); and a
// three-step quality from it for the tile's indicator.

export type Quality = 'good' | 'fair' | 'poor' | 'unknown'

export interface LinkStats {
  /** When these were taken (ms, the stats' own clock). */
  at: number
  /** Received bits per second (audio + video) since the previous sample; null on the first. */
  inKbps: number | null
  outKbps: number | null
  width: number
  height: number
  fps: number
  /** Share of the inbound packets lost since the previous sample (0..1); null on the first. */
  loss: number | null
  /** Round trip of the selected candidate pair, ms. */
  rttMs: number | null
  /** direct (host or server-reflexive both ends) or relay (either end through TURN). */
  path: 'direct' | 'relay' | 'unknown'
  /** How this side reaches the other: udp, tcp, or tls (TURN over TLS). */
  transport: string
  localType: string
  remoteType: string
  /** Counters kept for the next sample's rates. */
  totals: { bytesIn: number; bytesOut: number; packets: number; lost: number }
}

/** One entry of an RTCStatsReport. */
export type StatEntry = Record<string, unknown> & { type: string; id: string }
type Entry = StatEntry
const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0)

/** Reads one getStats() report; `prev` (the last sample of the same connection) gives the rates. */
export function summarize(report: Iterable<Entry>, prev: LinkStats | null, at: number): LinkStats {
  const entries = [...report]
  const byId = new Map(entries.map((e) => [e.id, e]))
  let pair: Entry | undefined
  for (const e of entries) {
    if (e.type === 'transport' && typeof e.selectedCandidatePairId === 'string') pair = byId.get(e.selectedCandidatePairId)
  }
  pair ??= entries.find((e) => e.type === 'candidate-pair' && e.nominated === true && e.state === 'succeeded')
  const local = pair ? byId.get(String(pair.localCandidateId)) : undefined
  const remote = pair ? byId.get(String(pair.remoteCandidateId)) : undefined
  const totals = { bytesIn: 0, bytesOut: 0, packets: 0, lost: 0 }
  let width = 0
  let height = 0
  let fps = 0
  for (const e of entries) {
    if (e.type === 'inbound-rtp') {
      totals.bytesIn += num(e.bytesReceived)
      totals.packets += num(e.packetsReceived)
      totals.lost += Math.max(0, num(e.packetsLost))
      if (e.kind === 'video' && num(e.frameWidth) * num(e.frameHeight) > width * height) {
        width = num(e.frameWidth)
        height = num(e.frameHeight)
        fps = num(e.framesPerSecond)
      }
    } else if (e.type === 'outbound-rtp') {
      totals.bytesOut += num(e.bytesSent)
    }
  }
  const seconds = prev ? (at - prev.at) / 1000 : 0
  const rate = (now: number, before: number) => (prev && seconds > 0 ? Math.max(0, Math.round(((now - before) * 8) / seconds / 1000)) : null)
  const dPackets = prev ? totals.packets - prev.totals.packets : 0
  const dLost = prev ? totals.lost - prev.totals.lost : 0
  const localType = String(local?.candidateType ?? '')
  const remoteType = String(remote?.candidateType ?? '')
  const relayed = localType === 'relay' || remoteType === 'relay'
  const transport = localType === 'relay' ? String(local?.relayProtocol ?? local?.protocol ?? '') : String(local?.protocol ?? '')
  const rtt = pair && typeof pair.currentRoundTripTime === 'number' ? Math.round(pair.currentRoundTripTime * 1000) : null
  return {
    at,
    inKbps: rate(totals.bytesIn, prev?.totals.bytesIn ?? 0),
    outKbps: rate(totals.bytesOut, prev?.totals.bytesOut ?? 0),
    width,
    height,
    fps,
    loss: prev && dPackets + dLost > 0 ? Math.max(0, dLost) / (dPackets + Math.max(0, dLost)) : prev ? 0 : null,
    rttMs: rtt,
    path: !pair ? 'unknown' : relayed ? 'relay' : 'direct',
    transport: transport.toLowerCase(),
    localType,
    remoteType,
    totals,
  }
}

/** Good below 2 % loss and 300 ms; poor from 8 % or 700 ms; fair between. */
export function qualityOf(s: LinkStats | null): Quality {
  if (!s || s.path === 'unknown' || (s.loss === null && s.rttMs === null)) return 'unknown'
  const loss = s.loss ?? 0
  const rtt = s.rttMs ?? 0
  if (loss >= 0.08 || rtt >= 700) return 'poor'
  if (loss >= 0.02 || rtt >= 300) return 'fair'
  return 'good'
}
