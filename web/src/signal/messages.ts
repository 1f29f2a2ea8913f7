// Wire types for the peerbox signalling protocol (docs/protocol.md, version 1) and their parser.

export interface Member {
  sessionId: string
  username: string
}

/** Someone knocking at the lobby (told to the host), with how long it has waited (newer servers). */
export interface Waiter extends Member {
  waitedSecs?: number
}

export interface ResumeInfo {
  sessionId: string
  token: string
}

export type SessionDescription = { type: RTCSdpType; sdp: string }

/** A room's state (extension): who hosts it and what the host has set. */
export interface RoomState {
  host: string
  locked: boolean
  lobby: boolean
  password: boolean
  history: boolean
}

/** A host's change to the room's settings: fields left out stay as they are; `password: null` clears it. */
export interface RoomChange {
  locked?: boolean
  lobby?: boolean
  history?: boolean
  password?: string | null
}

export type HostAction = 'handOver' | 'admit' | 'decline' | 'remove'

/** Messages this client sends. `from` is always overwritten by the server, so it is never sent. */
export type OutgoingMessage =
  | { type: 'randomCheck'; data: string }
  // `sfu`: this client can use the server's SFU in big rooms (extension, docs/protocol.md).
  | { type: 'login'; data: { roomrequest: string; username: string; resume?: ResumeInfo; password?: string; sfu?: boolean } }
  // `fresh` is a relayed field the server passes on untouched (not part of the seed's protocol).
  // `auth`: the sender's DTLS fingerprints signed with the room secret (relayed untouched, see rtc/trust.ts).
  | { type: 'offer'; to: string; data: SessionDescription; username: string; fresh?: true; auth?: string }
  | { type: 'answer'; to: string; data: SessionDescription; auth?: string }
  | { type: 'candidate'; to: string; data: RTCIceCandidateInit | null }
  | { type: 'logout' }
  | { type: 'iceServers' }
  // The host's powers (extensions; the server refuses them from anyone else with not-host).
  | { type: 'roomSettings'; data: RoomChange }
  | { type: HostAction; to: string }
  | { type: 'askMute'; to: string; data: { kind: 'audio' | 'video' } }
  | { type: 'endCall' }
  // The SFU (extension): addressed to the server, no `to`.
  | { type: 'sfu-join' }
  | { type: 'sfu-answer'; data: { sdp: string } }
  | { type: 'sfu-candidate'; data: { candidate: string } }
  | { type: 'sfu-leave' }
  | { type: 'sfu-view'; data: { views: SfuView[] } }
  | { type: 'sfu-unpublish'; data: { source: 'screen' } }

/** What a member sends or receives on one m-line of the SFU connection. */
export type SfuSource = 'mic' | 'camera' | 'screen'

/** An m-line of an `sfu-offer` this client publishes on. */
export interface SfuPublish {
  mid: string
  kind: 'audio' | 'video'
  /** Absent from servers before the screen m-line: mic or camera by kind. */
  source?: SfuSource
  /** Simulcast layers offered on this m-line (camera: h, m, l). */
  rids?: string[]
}

/** An m-line of an `sfu-offer` that carries another member's track. */
export interface SfuTrack {
  mid: string
  kind: 'audio' | 'video'
  from: string
  source?: SfuSource
}

export interface SfuOffer {
  sdp: string
  publish: SfuPublish[]
  tracks: SfuTrack[]
}

/** The size in device pixels a remote video is shown at (0x0: not visible). */
export interface SfuView {
  mid: string
  width: number
  height: number
}

export type RoomMode = 'mesh' | 'sfu'

export interface JoinedInfo {
  sessionId: string
  room: string
  members: Member[]
  iceServers: RTCIceServer[]
  resumeToken?: string
  /** The server gave back the session id this client had (its resume token verified). */
  resumed?: boolean
  capacity?: number
  /** Absent from servers without host powers. */
  state?: RoomState
  /** Absent from servers without an SFU: mesh. */
  mode?: RoomMode
}

export type IncomingMessage =
  | { type: 'randomCheckResult'; result: 'ok' | 'fail'; room: string }
  | ({ type: 'joined' } & JoinedInfo)
  | { type: 'login'; from: string; username: string; room: string }
  | { type: 'logout'; from: string; username: string }
  | { type: 'offer'; from: string; description: SessionDescription; username?: string; fresh?: boolean; auth?: string }
  | { type: 'answer'; from: string; description: SessionDescription; auth?: string }
  | { type: 'candidate'; from: string; candidate: RTCIceCandidateInit | null }
  | { type: 'error'; errorType: string; errorText: string }
  | { type: 'iceServers'; iceServers: RTCIceServer[] }
  | { type: 'roomState'; state: RoomState }
  | { type: 'lobby'; waiting: Waiter[] }
  /** `waitSecs`: how long the knock stays valid (absent from older servers). */
  | { type: 'knocking'; room: string; waitSecs?: number }
  | { type: 'askMute'; from: string; kind: 'audio' | 'video' }
  | { type: 'ended'; from: string }
  | { type: 'mode'; mode: RoomMode }
  | ({ type: 'sfu-offer' } & SfuOffer)
  | { type: 'sfu-speakers'; speakers: string[] }
  /** The videos the SFU pauses for our bandwidth now (each member's camera or screen; `[]`: none). */
  | { type: 'sfu-paused'; paused: { from: string; source: 'camera' | 'screen' }[] }

type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const str = (v: unknown): string => (typeof v === 'string' ? v : '')
/** A duration in seconds the server sent, or undefined when absent or not a sane number. */
const secs = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined)

function parseWaiters(v: unknown[]): Waiter[] {
  return v.filter(isObj).map((m) => {
    const waited = secs(m.waitedSecs)
    return { sessionId: str(m.sessionId), username: str(m.username), ...(waited === undefined ? {} : { waitedSecs: waited }) }
  }).filter((m) => m.sessionId !== '')
}

function parseMembers(v: unknown): Member[] {
  if (!Array.isArray(v)) return []
  return v.filter(isObj).map((m) => ({ sessionId: str(m.sessionId), username: str(m.username) }))
    .filter((m) => m.sessionId !== '')
}

/** RTCIceServer[] as the server sends it; entries without a usable `urls` are dropped. */
function parseIceServers(v: unknown): RTCIceServer[] {
  if (!Array.isArray(v)) return []
  return v.filter(isObj).flatMap((s) => {
    const urls = typeof s.urls === 'string' ? [s.urls] : Array.isArray(s.urls) ? s.urls.filter((u) => typeof u === 'string') : []
    if (!urls.length) return []
    const out: RTCIceServer = { urls }
    if (typeof s.username === 'string') out.username = s.username
    if (typeof s.credential === 'string') out.credential = s.credential
    return [out]
  })
}

function parseState(v: unknown): RoomState | undefined {
  if (!isObj(v) || typeof v.host !== 'string') return undefined
  return { host: v.host, locked: v.locked === true, lobby: v.lobby === true, password: v.password === true, history: v.history !== false }
}

/** Accepts `{type, sdp}` (what browsers serialise) or a bare SDP string (older clients). */
function parseDescription(v: unknown, fallback: RTCSdpType): SessionDescription | null {
  if (typeof v === 'string') return { type: fallback, sdp: v }
  if (isObj(v) && typeof v.sdp === 'string') {
    const type = v.type === 'offer' || v.type === 'answer' || v.type === 'pranswer' || v.type === 'rollback'
      ? v.type : fallback
    return { type, sdp: v.sdp }
  }
  return null
}

const kindOf = (v: unknown): 'audio' | 'video' | null => (v === 'audio' || v === 'video' ? v : null)
const sourceOf = (v: unknown): SfuSource | undefined => (v === 'mic' || v === 'camera' || v === 'screen' ? v : undefined)

/** `sfu-offer`'s data; entries without a mid or a known kind are dropped. */
function parseSfuOffer(v: unknown): SfuOffer | null {
  if (!isObj(v) || typeof v.sdp !== 'string') return null
  const list = (x: unknown) => (Array.isArray(x) ? x.filter(isObj) : [])
  const publish = list(v.publish).flatMap((p): SfuPublish[] => {
    const kind = kindOf(p.kind)
    if (!kind || typeof p.mid !== 'string') return []
    const source = sourceOf(p.source)
    const rids = Array.isArray(p.rids) ? p.rids.filter((r): r is string => typeof r === 'string') : undefined
    return [{ mid: p.mid, kind, ...(source ? { source } : {}), ...(rids?.length ? { rids } : {}) }]
  })
  const tracks = list(v.tracks).flatMap((t): SfuTrack[] => {
    const kind = kindOf(t.kind)
    if (!kind || typeof t.mid !== 'string' || typeof t.from !== 'string' || !t.from) return []
    const source = sourceOf(t.source)
    return [{ mid: t.mid, kind, from: t.from, ...(source ? { source } : {}) }]
  })
  return { sdp: v.sdp, publish, tracks }
}

/** Parses one text frame; returns null for anything this client does not understand. */
export function parseMessage(text: string): IncomingMessage | null {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    return null
  }
  if (!isObj(raw)) return null
  const from = str(raw.from)
  const data = raw.data
  switch (raw.type) {
    case 'randomCheckResult': {
      const d = isObj(data) ? data : {}
      return { type: 'randomCheckResult', result: d.result === 'ok' ? 'ok' : 'fail', room: str(d.roomrequest) }
    }
    case 'joined':
      if (typeof data !== 'string' || data === '') return null
      return {
        type: 'joined',
        sessionId: data,
        room: str(raw.room),
        members: parseMembers(raw.members),
        iceServers: parseIceServers(raw.iceServers),
        resumeToken: typeof raw.resumeToken === 'string' ? raw.resumeToken : undefined,
        resumed: raw.resumed === true,
        capacity: typeof raw.capacity === 'number' ? raw.capacity : undefined,
        state: parseState(raw.state),
        mode: raw.mode === 'sfu' ? 'sfu' : 'mesh',
      }
    case 'login': {
      const d = isObj(data) ? data : {}
      return from ? { type: 'login', from, username: str(d.username), room: str(d.roomrequest) } : null
    }
    case 'logout': {
      const d = isObj(data) ? data : {}
      return from ? { type: 'logout', from, username: str(d.username) } : null
    }
    case 'offer':
    case 'answer': {
      const description = parseDescription(data, raw.type)
      if (!from || !description) return null
      const auth = typeof raw.auth === 'string' ? { auth: raw.auth } : {}
      return raw.type === 'offer'
        ? { type: 'offer', from, description, username: typeof raw.username === 'string' ? raw.username : undefined, fresh: raw.fresh === true, ...auth }
        : { type: 'answer', from, description, ...auth }
    }
    case 'candidate':
      if (!from) return null
      return { type: 'candidate', from, candidate: isObj(data) ? (data as RTCIceCandidateInit) : null }
    case 'iceServers':
      return Array.isArray(data) ? { type: 'iceServers', iceServers: parseIceServers(data) } : null
    case 'roomState': {
      const state = parseState(data)
      return state ? { type: 'roomState', state } : null
    }
    case 'lobby':
      return Array.isArray(data) ? { type: 'lobby', waiting: parseWaiters(data) } : null
    case 'knocking': {
      const wait = secs(isObj(data) ? data.waitSecs : undefined)
      return { type: 'knocking', room: str(isObj(data) ? data.roomrequest : ''), ...(wait === undefined ? {} : { waitSecs: wait }) }
    }
    case 'askMute': {
      const kind = isObj(data) ? data.kind : ''
      return from && (kind === 'audio' || kind === 'video') ? { type: 'askMute', from, kind } : null
    }
    case 'ended':
      return { type: 'ended', from }
    case 'mode':
      return isObj(data) && (data.mode === 'sfu' || data.mode === 'mesh') ? { type: 'mode', mode: data.mode } : null
    case 'sfu-offer': {
      const offer = parseSfuOffer(data)
      return offer ? { type: 'sfu-offer', ...offer } : null
    }
    case 'sfu-speakers':
      return isObj(data) && Array.isArray(data.speakers)
        ? { type: 'sfu-speakers', speakers: data.speakers.filter((s): s is string => typeof s === 'string' && s !== '') }
        : null
    case 'sfu-paused':
      return isObj(data) && Array.isArray(data.paused)
        ? {
            type: 'sfu-paused',
            paused: data.paused.flatMap((p) =>
              isObj(p) && str(p.from) && (p.source === 'camera' || p.source === 'screen') ? [{ from: str(p.from), source: p.source }] : [],
            ),
          }
        : null
    case 'error': {
      const m = isObj(raw.message) ? raw.message : {}
      return { type: 'error', errorType: str(m.errorType) || 'unknown', errorText: str(m.errorText) }
    }
    default:
      return null
  }
}

/** The WebSocket URL for this page: same host, `/ws`, wss unless the page itself is plain http. */
export function signalUrl(loc: Pick<Location, 'protocol' | 'host'>): string {
  return `${loc.protocol === 'http:' ? 'ws' : 'wss'}://${loc.host}/ws`
}
