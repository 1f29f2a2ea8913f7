// ChatLink: chat and state messages over one negotiated data channel, acknowledged and resent until
// acked; quick reactions go over it too, once, without an ack; and the chat history's asks and
// pages (history.ts), sent once: the asker tries another member when one goes unanswered.
import { isReaction, type Reaction } from './reactions'
import { PAGE_BYTES, utf8Length } from './history'

export interface ChatMessage {
  kind: 'chat'
  id: string
  from: string
  fromName: string
  text: string
  ts: number
  whisper: boolean
  /** Chat history (history.ts); on the wire only from older clients, which pushed it to newcomers. */
  past?: boolean
}

export interface StateMessage {
  kind: 'state'
  id: string
  mic: boolean
  cam: boolean
  /** Sharing a screen; absent from older clients (= false). */
  sharing?: boolean
  /** The id of the stream that carries the screen (the camera comes in another one). */
  screen?: string
  /** A raised hand; absent from older clients (= false). */
  hand?: boolean
  /** Recording the call on this device (MediaRecorder); absent from older clients (= false). */
  recording?: boolean
  /** In an SFU room: the members whose media this client gets from the SFU now (absent: none). */
  sfu?: string[]
  ts: number
}

/** A quick reaction: sent once, never acknowledged nor resent (a lost one does not matter). */
export interface ReactionMessage {
  kind: 'reaction'
  id: string
  emoji: Reaction
  ts: number
}

type Reliable = ChatMessage | StateMessage
type Wire = Reliable | ReactionMessage | { kind: 'ack'; id: string }

/** The part of RTCDataChannel this module needs, so tests can pass a fake. */
export interface ChannelLike {
  readyState: RTCDataChannelState
  send(data: string): void
  onopen: ((this: never, ev: never) => unknown) | null
  onmessage: ((this: never, ev: MessageEvent) => unknown) | null
}

export interface ChatLinkHandlers {
  onChat(msg: ChatMessage): void
  onState(msg: StateMessage): void
  /** A reaction of the known set (anything else is dropped here); rate limits are the caller's. */
  onReaction?(emoji: Reaction): void
  /** The channel opened (history asks can go out). */
  onOpen?(): void
  /** A `history-ask` or `history-page`, as parsed (the history module checks it). */
  onHistory?(msg: Record<string, unknown> & { kind: 'history-ask' | 'history-page' }): void
}

const MAX_TEXT = 4000

export class ChatLink {
  /** Sent but not yet acknowledged, in send order. */
  readonly pending = new Map<string, Reliable>()
  private seen = new Set<string>()
  private lastStateTs = 0
  private timer: ReturnType<typeof setInterval> | null = null

  constructor(
    private readonly channel: ChannelLike,
    private readonly handlers: ChatLinkHandlers,
    resendMs = 1000,
  ) {
    channel.onopen = () => {
      this.flush()
      handlers.onOpen?.()
    }
    channel.onmessage = (ev: MessageEvent) => this.receive(ev.data)
    this.timer = setInterval(() => this.flush(), resendMs)
  }

  send(msg: Reliable): void {
    this.pending.set(msg.id, msg)
    this.trySend(msg)
  }

  /** Sends a reaction now if the channel is open (false: not sent; it is not kept for later). */
  sendReaction(emoji: Reaction, id: string): boolean {
    return this.trySend({ kind: 'reaction', id, emoji, ts: Date.now() })
  }

  /** Sends a history ask or page once (not acknowledged); whether it went out. */
  sendOnce(msg: { kind: 'history-ask' | 'history-page' }): boolean {
    return this.trySend(msg as unknown as Wire)
  }

  get open(): boolean {
    return this.channel.readyState === 'open'
  }

  /** Resends everything unacknowledged; runs every second and when the channel (re)opens. */
  flush(): void {
    for (const msg of this.pending.values()) this.trySend(msg)
  }

  private trySend(msg: Wire): boolean {
    if (this.channel.readyState !== 'open') return false
    try {
      this.channel.send(JSON.stringify(msg))
      return true
    } catch {
      return false
    }
  }

  private receive(data: unknown): void {
    // Nothing sent here is bigger than a history page; JSON.parse never sees more.
    if (typeof data !== 'string' || data.length > PAGE_BYTES || utf8Length(data) > PAGE_BYTES) return
    let msg: Partial<Wire> & Record<string, unknown>
    try {
      msg = JSON.parse(data)
    } catch {
      return
    }
    if (typeof msg !== 'object' || msg === null || typeof msg.id !== 'string') return
    if (msg.kind === 'ack') {
      this.pending.delete(msg.id)
      return
    }
    if (msg.kind === 'reaction') {
      if (isReaction(msg.emoji)) this.handlers.onReaction?.(msg.emoji)
      return
    }
    const kind: unknown = msg.kind
    if (kind === 'history-ask' || kind === 'history-page') {
      this.handlers.onHistory?.({ ...msg, kind })
      return
    }
    if (msg.kind !== 'chat' && msg.kind !== 'state') return
    // Always ack, even a duplicate: the first ack may be the one that got lost.
    this.trySend({ kind: 'ack', id: msg.id })
    if (this.seen.has(msg.id)) return
    this.seen.add(msg.id)
    if (msg.kind === 'chat') {
      this.handlers.onChat({
        kind: 'chat',
        id: msg.id,
        from: String(msg.from ?? ''),
        fromName: String(msg.fromName ?? ''),
        text: String(msg.text ?? '').slice(0, MAX_TEXT),
        ts: Number(msg.ts) || Date.now(),
        whisper: msg.whisper === true,
        ...(msg.past === true ? { past: true } : {}),
      })
    } else {
      const ts = Number(msg.ts) || 0
      if (ts < this.lastStateTs) return // an older state resent after a newer one
      this.lastStateTs = ts
      this.handlers.onState({
        kind: 'state', id: msg.id, mic: msg.mic !== false, cam: msg.cam !== false, sharing: msg.sharing === true,
        screen: typeof msg.screen === 'string' ? msg.screen : undefined, hand: msg.hand === true,
        recording: msg.recording === true, ts,
        ...(Array.isArray(msg.sfu) ? { sfu: msg.sfu.filter((x): x is string => typeof x === 'string').slice(0, 1000) } : {}),
      })
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    this.pending.clear()
  }
}
