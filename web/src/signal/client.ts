// SignalClient: one WebSocket to the peerbox server, reconnecting with backoff and rejoining with resume.
import { backoffDelay } from './backoff'
import { Emitter } from './emitter'
import {
  parseMessage, type IncomingMessage, type JoinedInfo, type OutgoingMessage, type SessionDescription,
} from './messages'

export type SignalState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'

type Of<T extends IncomingMessage['type']> = Extract<IncomingMessage, { type: T }>

export type SignalEvents = {
  state: { state: SignalState; attempt: number }
  joined: JoinedInfo
  login: Of<'login'>
  logout: Of<'logout'>
  offer: Of<'offer'>
  answer: Of<'answer'>
  candidate: Of<'candidate'>
  error: Of<'error'>
  randomCheckResult: Of<'randomCheckResult'>
}

export interface SignalOptions {
  url: string
  createSocket?: (url: string) => WebSocket
  baseDelayMs?: number
  maxDelayMs?: number
  random?: () => number
}

export class SignalClient extends Emitter<SignalEvents> {
  state: SignalState = 'idle'
  attempt = 0
  sessionId: string | null = null
  private ws: WebSocket | null = null
  private timer: ReturnType<typeof setTimeout> | null = null
  private queue: OutgoingMessage[] = []
  private wanted: { room: string; username: string } | null = null
  private resume: { sessionId: string; token: string } | null = null
  private readonly opts: Required<SignalOptions>

  constructor(opts: SignalOptions) {
    super()
    this.opts = {
      createSocket: (url) => new WebSocket(url),
      baseDelayMs: 500,
      maxDelayMs: 15000,
      random: Math.random,
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

  login(room: string, username: string): void {
    this.wanted = { room, username }
    this.sendLogin()
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

  sendOffer(to: string, description: SessionDescription): void {
    this.send({ type: 'offer', to, data: description, username: this.wanted?.username ?? '' })
  }

  sendAnswer(to: string, description: SessionDescription): void {
    this.send({ type: 'answer', to, data: description })
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
    this.send({ type: 'login', data }, false)
  }

  /** Sends now if open; `queue` keeps it for the next open (relayed SDP would be stale, so it is not queued). */
  private send(msg: OutgoingMessage, queue = false): void {
    if (this.ws && this.state === 'open') this.ws.send(JSON.stringify(msg))
    else if (queue) this.queue.push(msg)
  }

  private onOpen(): void {
    this.attempt = 0
    this.setState('open')
    const queued = this.queue
    this.queue = []
    for (const m of queued) this.send(m)
    this.sendLogin()
  }

  private onText(text: string): void {
    const msg = parseMessage(text)
    if (!msg) return
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
    this.setState('reconnecting')
    const delay = backoffDelay(this.attempt, {
      baseMs: this.opts.baseDelayMs, maxMs: this.opts.maxDelayMs, random: this.opts.random,
    })
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

  private setState(state: SignalState): void {
    this.state = state
    this.emit('state', { state, attempt: this.attempt })
  }
}
