// FrameCrypto: end-to-end encryption of SFU media (contract point 7). Every sender's and receiver's
// encoded frames go through an RTCRtpScriptTransform in one worker (frameCrypto.worker.ts) with a
// key derived from the room secret, which the server never has: it forwards frames it cannot read.
import { deriveFrameKey } from './frameCipher'

export interface FrameCounts {
  encrypted: number
  decrypted: number
  /** Received frames that did not decrypt (another key, or not encrypted): dropped, never shown. */
  dropped: number
}

export class FrameCrypto {
  counts: FrameCounts = { encrypted: 0, decrypted: 0, dropped: 0 }
  /** Told the worker's counts about once a second while frames flow. */
  onCounts?: (c: FrameCounts) => void
  private worker: Worker | null = null
  private nextId = 0
  /** Transforms whose worker side is not set up yet, by id. */
  private pending = new Map<number, () => void>()

  private constructor(private readonly key: CryptoKey, worker: Worker | null = null) {
    if (worker) this.listen(worker)
  }

  /** Whether this browser can transform encoded frames in a worker. */
  static supported(): boolean {
    return typeof RTCRtpScriptTransform !== 'undefined' && typeof Worker !== 'undefined'
  }

  /** The room's frame encryption, or null without a secret or without browser support. */
  static async of(secret: string, room: string, readyMs = 5000): Promise<FrameCrypto | null> {
    if (!secret || !FrameCrypto.supported()) return null
    const key = await deriveFrameKey(secret, room)
    return new FrameCrypto(key, await FrameCrypto.startWorker(readyMs))
  }

  /** Starts the worker and waits until its script runs (it says `ready`), so that transforms are set up at once. */
  private static startWorker(readyMs: number): Promise<Worker> {
    const worker = new Worker(new URL('./frameCrypto.worker.ts', import.meta.url), { type: 'module', name: 'peerbox-frames' })
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(worker), readyMs)
      worker.onmessage = (ev: MessageEvent<unknown>) => {
        if ((ev.data as { ready?: boolean } | null)?.ready !== true) return
        clearTimeout(timer)
        resolve(worker)
      }
    })
  }

  private listen(worker: Worker): void {
    this.worker = worker
    worker.onmessage = (ev: MessageEvent<FrameCounts | { attached: number } | { ready: true }>) => {
      if ('ready' in ev.data) return
      if ('attached' in ev.data) {
        this.pending.get(ev.data.attached)?.()
        return
      }
      this.counts = ev.data
      this.onCounts?.(ev.data)
    }
  }

  /**
   * Puts the transform on a sender or receiver; resolves once the worker has set it up (or after
   * `waitMs`). SfuLink negotiates after this resolves, so no stream starts before its transform.
   */
  attach(x: RTCRtpSender | RTCRtpReceiver, op: 'encrypt' | 'decrypt', kind: 'audio' | 'video', waitMs = 3000): Promise<void> {
    if (!this.worker) this.listen(new Worker(new URL('./frameCrypto.worker.ts', import.meta.url), { type: 'module', name: 'peerbox-frames' }))
    const id = ++this.nextId
    const ready = new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.pending.delete(id)
        resolve()
      }
      const timer = setTimeout(done, waitMs)
      this.pending.set(id, done)
    })
    x.transform = new RTCRtpScriptTransform(this.worker!, { op, kind, key: this.key, id })
    return ready
  }

  close(): void {
    for (const done of [...this.pending.values()]) done()
    this.worker?.terminate()
    this.worker = null
  }
}
