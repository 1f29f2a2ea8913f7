// SfuRecovery: when this member's SFU connection is made again (used by sfuSwitch.ts). ICE comes
// back by itself from a short outage, and the server keeps a silent member's tracks and
// subscriptions for 30 s (docs/protocol.md "SFU connection states"), so a `disconnected` that
// ends within DISCONNECTED_MS costs nothing. A connection `failed`, `disconnected` for longer, or a
// new one not up within CONNECT_MS is made again with a fresh `sfu-join` (the server is ICE-lite
// and makes every offer: the client cannot restart its ICE), after a backoff with jitter, at most
// MAX_ATTEMPTS times in a row; then the member's media goes back to the mesh links.
import { backoffDelay } from '../signal/backoff'

/** How long `disconnected` may last before the connection is made again. */
export const DISCONNECTED_MS = 5000
/** How long a new connection may take to come up. */
export const CONNECT_MS = 15000
/** Attempts in a row before giving up (back to the mesh). */
export const MAX_ATTEMPTS = 5

export interface SfuRecoveryOptions {
  /** Makes the SFU connection again (a new one, a new `sfu-join`). */
  rejoin: () => void
  /** No attempt left: the media goes back to the mesh links. */
  giveUp: () => void
  /** `reconnecting` changed. */
  onChange?: () => void
  disconnectedMs?: number
  connectMs?: number
  maxAttempts?: number
  baseMs?: number
  maxMs?: number
  random?: () => number
}

export class SfuRecovery {
  /** Between losing the connection and the next one coming up: the tiles say so. */
  reconnecting = false
  /** Attempts since the connection was last up. */
  attempts = 0
  private timer: ReturnType<typeof setTimeout> | null = null

  constructor(private readonly opts: SfuRecoveryOptions) {}

  /** The current SFU connection's state changed. */
  onState(state: RTCPeerConnectionState): void {
    if (state === 'connected') {
      this.stopTimer()
      this.attempts = 0
      this.setReconnecting(false)
    } else if (state === 'failed') {
      this.retry()
    } else if (state === 'disconnected' && !this.timer) {
      this.timer = setTimeout(() => this.retry(), this.opts.disconnectedMs ?? DISCONNECTED_MS)
    }
  }

  /** Ends any wait (the connection was closed on purpose, or a new one started anew). */
  stop(): void {
    this.stopTimer()
    this.attempts = 0
    this.setReconnecting(false)
  }

  private retry(): void {
    this.stopTimer()
    if (this.attempts >= (this.opts.maxAttempts ?? MAX_ATTEMPTS)) {
      this.stop()
      this.opts.giveUp()
      return
    }
    this.attempts += 1
    this.setReconnecting(true)
    const delay = backoffDelay(this.attempts, {
      baseMs: this.opts.baseMs ?? 1000,
      maxMs: this.opts.maxMs ?? 10000,
      random: this.opts.random ?? Math.random,
    })
    this.timer = setTimeout(() => {
      // The new connection must be up within CONNECT_MS, else the next attempt.
      this.timer = setTimeout(() => this.retry(), this.opts.connectMs ?? CONNECT_MS)
      this.opts.rejoin()
    }, delay)
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  private setReconnecting(on: boolean): void {
    if (this.reconnecting === on) return
    this.reconnecting = on
    this.opts.onChange?.()
  }
}
