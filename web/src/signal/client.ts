// SignalClient: one WebSocket to the peerbox server, reconnecting with backoff and rejoining with
// resume; a server that refuses the connection (too-many-connections) is left alone for longer.
import { backoffDelay } from './backoff'
import { Emitter } from './emitter'
import {
  parseMessage, type HostAction, type IncomingMessage, type JoinedInfo, type OutgoingMessage, type RoomChange,
  type SessionDescription, type SfuView,
} from './messages'

export type SignalState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'

type Of<T extends IncomingMessage['type']> = Extract<IncomingMessage, { type: T }>

export interface StateEvent {
  state: SignalState
  attempt: number
  /** While reconnecting: the wait before the next attempt. */
  retryInMs?: number
  /** The server refused the last connection (too-many-connections): waits are longer, and say why. */
  refused?: boolean
}

/** Why `iceServers()` gave up. */
export class IceServersError extends Error {
  constructor(readonly reason: 'rate-limited' | 'unsupported' | 'timeout') {
    super(`iceServers: ${reason}`)
  }
}

export type SignalEvents = {
  state: StateEvent
  joined: JoinedInfo
  login: Of<'login'>
  logout: Of<'logout'>
  offer: Of<'offer'>
  answer: Of<'answer'>
  candidate: Of<'candidate'>
  error: Of<'error'>
  randomCheckResult: Of<'randomCheckResult'>
  iceServers: Of<'iceServers'>
  roomState: Of<'roomState'>
  lobby: Of<'lobby'>
  knocking: Of<'knocking'>
  askMute: Of<'askMute'>
  ended: Of<'ended'>
  mode: Of<'mode'>
  'sfu-offer': Of<'sfu-offer'>
  'sfu-speakers': Of<'sfu-speakers'>
  'sfu-paused': Of<'sfu-paused'>
}

export interface SignalOptions {
  url: string
  createSocket?: (url: string) => WebSocket
  baseDelayMs?: number
  maxDelayMs?: number
  random?: () => number
  /** First wait after a refusal (too-many-connections); doubles up to maxRefusedDelayMs. */
  refusedDelayMs?: number
  maxRefusedDelayMs?: number
}

export class SignalClient extends Emitter<SignalEvents> {
  state: SignalState = 'idle'
  attempt = 0
  sessionId: string | null = null
  private ws: WebSocket | null = null
  private timer: ReturnType<typeof setTimeout> | null = null
  private queue: OutgoingMessage[] = []
  /** The room to be in, kept for reconnects (with its password, if it has one). */
  private wanted: { room: string; username: string; password?: string } | null = null
  private resume: { sessionId: string; token: string } | null = null
  /** Refusals in a row; the socket that got one closes into a longer wait. */
  private refusals = 0
  private refusedSocket: WebSocket | null = null
  private readonly opts: Required<SignalOptions>

  constructor(opts: SignalOptions) {
    super()
    this.opts = {
      createSocket: (url) => new WebSocket(url),
      baseDelayMs: 500,
      maxDelayMs: 15000,
      random: Math.random,
      refusedDelayMs: 4000,
      maxRefusedDelayMs: 60000,
      ...opts,
    }
  }

  connect(): void {
    if (this.ws || this.state === 'closed') return
    this.setState(this.attempt > 0 ? 'reconnecting' : 'connecting')
    const ws = this.opts.createSocket(this.opts.url)
    this.ws = ws
    ws.onopen = () => this.onOpen()
    ws.onmessage = (ev: MessageEvent) => {
      if (typeof ev.data === 'string') this.onText(ev.data)
    }
    ws.onclose = () => this.onClose(ws)
  }

  /** Closes for good: no reconnect. */
  close(): void {
    this.clearTimer()
    this.setState('closed')
    const ws = this.ws
    this.ws = null
    if (ws) {
      ws.onclose = null
      ws.close(1000)
    }
  }

  /** Skips the backoff wait (e.g. when the browser says it is online again). */
  reconnectNow(): void {
    if (this.state !== 'reconnecting' || this.ws) return
    this.clearTimer()
    this.connect()
  }

  randomCheck(room: string): void {
    this.send({ type: 'randomCheck', data: room }, true)
  }

  /** Asks for random room ids from `generate` until the server says one is free. */
  randomRoom(generate: () => string, maxTries = 5): Promise<string> {
    return new Promise((resolve, reject) => {
      let tries = 0
      let candidate = ''
      const next = () => {
        if (tries++ >= maxTries) {
          off()
          reject(new Error('no free room id found'))
          return
        }
        candidate = generate()
        this.randomCheck(candidate)
      }
      const off = this.on('randomCheckResult', (r) => {
        if (r.room && r.room !== candidate) return
        if (r.result === 'ok') {
          off()
          resolve(candidate)
        } else next()
      })
      next()
    })
  }

  /**
   * Fresh ICE servers (TURN credentials) without joining a room, for the connection check: the
   * `iceServers` request. An old server answers `bad-request` (unsupported); waits at most `timeoutMs`
   * (the request is queued until the socket opens).
   */
  iceServers(timeoutMs = 8000): Promise<RTCIceServer[]> {
    return new Promise((resolve, reject) => {
      const done = (f: () => void) => {
        clearTimeout(timer)
        offOk()
        offErr()
        f()
      }
      const timer = setTimeout(() => done(() => reject(new IceServersError('timeout'))), timeoutMs)
      const offOk = this.on('iceServers', (m) => done(() => resolve(m.iceServers)))
      // Errors carry no request id: while this request is out, bad-request can only be its answer.
      const offErr = this.on('error', (e) => {
        if (e.errorType === 'rate-limited') done(() => reject(new IceServersError('rate-limited')))
        else if (e.errorType === 'bad-request') done(() => reject(new IceServersError('unsupported')))
      })
      this.send({ type: 'iceServers' }, true)
    })
  }

  login(room: string, username: string, password?: string): void {
    this.wanted = { room, username, ...(password ? { password } : {}) }
    this.sendLogin()
  }

  /** Host only (the server refuses anyone else with not-host). */
  setRoom(change: RoomChange): void {
    this.send({ type: 'roomSettings', data: change })
    if (change.password !== undefined && this.wanted) {
      // Our own reconnects need the new password when the resume token cannot be used.
      this.wanted = { ...this.wanted, password: change.password ?? undefined }
    }
  }

  hostAction(type: HostAction, to: string): void {
    this.send({ type, to })
  }

  askMute(to: string, kind: 'audio' | 'video'): void {
    this.send({ type: 'askMute', to, data: { kind } })
  }

  endCall(): void {
    this.send({ type: 'endCall' })
  }

  /** The SFU (extension): connect, answer its offer, trickle, view sizes, stop a screen, leave. */
  sfuJoin(): void {
    this.send({ type: 'sfu-join' })
  }

  sfuAnswer(sdp: string): void {
    this.send({ type: 'sfu-answer', data: { sdp } })
  }

  sfuCandidate(candidate: string): void {
    this.send({ type: 'sfu-candidate', data: { candidate } })
  }

  sfuView(views: SfuView[]): void {
    this.send({ type: 'sfu-view', data: { views } })
  }

  sfuUnpublish(): void {
    this.send({ type: 'sfu-unpublish', data: { source: 'screen' } })
  }

  sfuLeave(): void {
    this.send({ type: 'sfu-leave' })
  }

  /** Drops the wanted room without telling the server (after a refused login such as `full`). */
  forgetRoom(): void {
    this.wanted = null
    this.resume = null
  }

  logout(): void {
    this.wanted = null
    this.resume = null
    this.sessionId = null
    this.send({ type: 'logout' })
  }

  /** `fresh`: the first offer of a new peer connection that replaces a running one (see Mesh). */
  sendOffer(to: string, description: SessionDescription, fresh = false, auth?: string): void {
    const username = this.wanted?.username ?? ''
    this.send({ type: 'offer', to, data: description, username, ...(fresh ? { fresh: true as const } : {}), ...(auth ? { auth } : {}) })
  }

  sendAnswer(to: string, description: SessionDescription, auth?: string): void {
    this.send({ type: 'answer', to, data: description, ...(auth ? { auth } : {}) })
  }

  sendCandidate(to: string, candidate: RTCIceCandidateInit | null): void {
    this.send({ type: 'candidate', to, data: candidate })
  }

  private sendLogin(): void {
    if (!this.wanted) return
    const data: Extract<OutgoingMessage, { type: 'login' }>['data'] = {
      roomrequest: this.wanted.room,
      username: this.wanted.username,
    }
    if (this.resume) data.resume = { ...this.resume }
    if (this.wanted.password) data.password = this.wanted.password
    // Big rooms go through the server's SFU when every member can (a browser without WebRTC cannot).
    if (typeof RTCPeerConnection !== 'undefined') data.sfu = true
    this.send({ type: 'login', data }, false)
  }

  /** Sends now if open; `queue` keeps it for the next open (relayed SDP would be stale, so it is not queued). */
  private send(msg: OutgoingMessage, queue = false): void {
    if (this.ws && this.state === 'open') this.ws.send(JSON.stringify(msg))
    else if (queue) this.queue.push(msg)
  }

  private onOpen(): void {
    this.attempt = 0
    this.setState('open', { refused: this.refusals > 0 })
    const queued = this.queue
    this.queue = []
    for (const m of queued) this.send(m)
    this.sendLogin()
  }

  private onText(text: string): void {
    const msg = parseMessage(text)
    if (!msg) return
    if (msg.type === 'error' && msg.errorType === 'too-many-connections') {
      this.refusals += 1
      this.refusedSocket = this.ws
    } else if (msg.type !== 'error') {
      this.refusals = 0
    }
    if (msg.type === 'joined') {
      const { type: _t, ...info } = msg
      void _t
      this.sessionId = info.sessionId
      this.resume = info.resumeToken ? { sessionId: info.sessionId, token: info.resumeToken } : null
      this.emit('joined', info)
      return
    }
    // Each branch narrows msg to the payload type of the event with the same name.
    this.emit(msg.type, msg as never)
  }

  private onClose(ws: WebSocket): void {
    if (ws !== this.ws) return
    this.ws = null
    if (this.state === 'closed') return
    this.attempt += 1
    // A refused socket opened fine, so attempt alone would restart at the shortest wait each time
    // (19 reconnects in 7 s): count refusals on their own, with a longer base.
    const refused = ws === this.refusedSocket
    this.refusedSocket = null
    if (!refused) this.refusals = 0
    const delay = refused
      ? backoffDelay(this.refusals, { baseMs: this.opts.refusedDelayMs, maxMs: this.opts.maxRefusedDelayMs, random: this.opts.random })
      : backoffDelay(this.attempt, { baseMs: this.opts.baseDelayMs, maxMs: this.opts.maxDelayMs, random: this.opts.random })
    this.setState('reconnecting', { retryInMs: delay, refused })
    this.clearTimer()
    this.timer = setTimeout(() => {
      this.timer = null
      this.connect()
    }, delay)
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  private setState(state: SignalState, extra: Omit<StateEvent, 'state' | 'attempt'> = {}): void {
    this.state = state
    this.emit('state', { state, attempt: this.attempt, ...extra })
  }
}
