// iceCheck: the connection check. Tries every ICE server URL on its own, in a peer connection of
// its own (TURN URLs with iceTransportPolicy 'relay', so only that URL can produce a candidate),
// and reports which paths reach the server: a server-reflexive candidate for STUN, a relay
// candidate for TURN, with its protocol, address and how long it took; or the browser's ICE error.

export type PathKind = 'stun' | 'turn' | 'turns'

export interface IceUrl {
  url: string
  kind: PathKind
  host: string
  port: number
  /** What carries the request to the server: udp, tcp, or tls (turns:). */
  transport: 'udp' | 'tcp' | 'tls'
}

export type PathStatus = 'ok' | 'no-nat' | 'failed'

export interface PathResult extends IceUrl {
  status: PathStatus
  /** Milliseconds from the start of gathering to the candidate (or to giving up). */
  ms: number
  candidateType?: string
  /** The candidate's own protocol (the relayed address is UDP for every TURN transport). */
  protocol?: string
  /** How this device reached the TURN server for a relay candidate (udp, tcp, tls), where the browser says. */
  relayProtocol?: string
  address?: string
  errorCode?: number
  errorText?: string
}

/** Splits `stun:`/`turn:`/`turns:` URLs into their parts; null for anything else. */
export function parseIceUrl(url: string): IceUrl | null {
  const m = /^(stuns?|turns?):(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?transport=(udp|tcp))?$/i.exec(url.trim())
  if (!m) return null
  const scheme = m[1]!.toLowerCase()
  if (scheme === 'stuns') return null // no browser supports it
  const kind = scheme as PathKind
  const secure = kind === 'turns'
  const port = m[3] ? Number(m[3]) : secure ? 5349 : 3478
  const transport = secure ? 'tls' : kind === 'stun' ? 'udp' : ((m[4]?.toLowerCase() ?? 'udp') as 'udp' | 'tcp')
  return { url, kind, host: m[2]!, port, transport }
}

/** Every URL of every server, each with the credentials of its server. */
export function expandServers(servers: RTCIceServer[]): { target: IceUrl; server: RTCIceServer }[] {
  const out: { target: IceUrl; server: RTCIceServer }[] = []
  for (const s of servers) {
    for (const url of typeof s.urls === 'string' ? [s.urls] : s.urls) {
      const target = parseIceUrl(url)
      if (target) out.push({ target, server: { ...s, urls: [url] } })
    }
  }
  return out
}

export interface CheckOptions {
  timeoutMs?: number
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection
  now?: () => number
}

/** Checks one URL. Never rejects: a failure is a result. */
export async function checkPath(target: IceUrl, server: RTCIceServer, opts: CheckOptions = {}): Promise<PathResult> {
  const now = opts.now ?? (() => performance.now())
  const create = opts.createPeerConnection ?? ((c) => new RTCPeerConnection(c))
  const want = target.kind === 'stun' ? 'srflx' : 'relay'
  const pc = create({ iceServers: [server], iceTransportPolicy: target.kind === 'stun' ? 'all' : 'relay' })
  const start = now()
  let error: { code?: number; text?: string } = {}
  try {
    return await new Promise<PathResult>((resolve) => {
      const finish = (r: Omit<PathResult, keyof IceUrl | 'ms'>) => {
        clearTimeout(timer)
        resolve({ ...target, ...r, ms: Math.round(now() - start) })
      }
      const timer = setTimeout(() => finish({ status: 'failed', errorCode: error.code, errorText: error.text ?? 'timeout' }), opts.timeoutMs ?? 10000)
      pc.onicecandidate = (ev) => {
        const c = ev.candidate
        if (c && c.type === want) {
          const relayProtocol = (c as RTCIceCandidate & { relayProtocol?: string }).relayProtocol ?? undefined
          finish({
            status: 'ok', candidateType: c.type, protocol: c.protocol ?? undefined, relayProtocol,
            address: c.address ? `${c.address}:${c.port}` : undefined,
          })
        } else if (!c) {
          // Gathering ended without the candidate. For STUN with no error the server did answer,
          // but the address it saw is this device's own (no NAT in between), which browsers drop.
          const answered = target.kind === 'stun' && error.code === undefined
          finish(answered ? { status: 'no-nat' } : { status: 'failed', errorCode: error.code, errorText: error.text ?? 'no candidate' })
        }
      }
      pc.onicecandidateerror = (ev) => {
        const e = ev as RTCPeerConnectionIceErrorEvent
        error = { code: e.errorCode, text: e.errorText }
      }
      pc.createDataChannel('check')
      pc.setLocalDescription().catch((e: unknown) => finish({ status: 'failed', errorText: String(e) }))
    })
  } finally {
    pc.close()
  }
}

/** Checks every URL at once (each on its own connection). */
export function checkAll(servers: RTCIceServer[], opts: CheckOptions = {}): Promise<PathResult[]> {
  return Promise.all(expandServers(servers).map(({ target, server }) => checkPath(target, server, opts)))
}

/** The plain-text report an admin can be sent. */
export function reportText(results: PathResult[], context: { page: string; userAgent: string; time: Date; note: string }): string {
  const lines = [
    `peerbox connection check, ${context.time.toISOString()}`,
    `page: ${context.page}`,
    `browser: ${context.userAgent}`,
    '',
  ]
  for (const r of results) {
    const what = `${r.url} (${r.transport.toUpperCase()} to port ${r.port})`
    const via = r.relayProtocol ? `, reached over ${r.relayProtocol.toUpperCase()}` : ''
    if (r.status === 'ok') lines.push(`OK     ${what}: ${r.candidateType} candidate ${r.address ?? '?'}${via} in ${r.ms} ms`)
    else if (r.status === 'no-nat') lines.push(`OK     ${what}: answered; no NAT between this device and the server (${r.ms} ms)`)
    else lines.push(`FAILED ${what}: ${r.errorCode ? `error ${r.errorCode} ` : ''}${r.errorText ?? ''} after ${r.ms} ms`)
  }
  if (!results.length) lines.push('(the server offered no STUN/TURN URLs)')
  lines.push('', context.note)
  return lines.join('\n')
}
