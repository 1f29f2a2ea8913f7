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

  private constructor(private readonly key: CryptoKey) {}

  /** Whether this browser can transform encoded frames in a worker. */
  static supported(): boolean {
    return typeof RTCRtpScriptTransform !== 'undefined' && typeof Worker !== 'undefined'
  }

  /** The room's frame encryption, or null without a secret or without browser support. */
  static async of(secret: string, room: string): Promise<FrameCrypto | null> {
    if (!secret || !FrameCrypto.supported()) return null
    return new FrameCrypto(await deriveFrameKey(secret, room))
  }

  attach(x: RTCRtpSender | RTCRtpReceiver, op: 'encrypt' | 'decrypt', kind: 'audio' | 'video'): void {
    if (!this.worker) {
      this.worker = new Worker(new URL('./frameCrypto.worker.ts', import.meta.url), { type: 'module', name: 'peerbox-frames' })
      this.worker.onmessage = (ev: MessageEvent<FrameCounts>) => {
        this.counts = ev.data
        this.onCounts?.(ev.data)
      }
    }
    x.transform = new RTCRtpScriptTransform(this.worker, { op, kind, key: this.key })
  }

  close(): void {
    this.worker?.terminate()
    this.worker = null
  }
}
