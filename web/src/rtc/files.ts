// FileLink: file transfer over one negotiated data channel: metadata, 16 KiB chunks with backpressure, SHA-256 end.

export const CHUNK_SIZE = 16 * 1024
export const MAX_FILE_SIZE = 512 * 1024 * 1024
const READ_BLOCK = 64 * CHUNK_SIZE
const HIGH_WATER = 4 * 1024 * 1024
const LOW_WATER = 1024 * 1024

export interface FileMeta {
  id: string
  name: string
  size: number
  mime: string
}

type Control =
  | ({ kind: 'file-meta' } & FileMeta)
  | { kind: 'file-end'; id: string; sha256: string }
  | { kind: 'file-cancel'; id: string }

export interface FileChannelLike {
  readyState: RTCDataChannelState
  bufferedAmount: number
  bufferedAmountLowThreshold: number
  binaryType: BinaryType
  send(data: string | ArrayBuffer): void
  onmessage: ((this: never, ev: MessageEvent) => unknown) | null
  onbufferedamountlow: ((this: never, ev: Event) => unknown) | null
  onopen: ((this: never, ev: Event) => unknown) | null
  onclose: ((this: never, ev: Event) => unknown) | null
}

export interface FileLinkHandlers {
  onIncoming(meta: FileMeta): void
  onProgress(id: string, bytes: number): void
  onComplete(id: string, blob: Blob, sha256: string): void
  /** reason: 'cancelled' (either side), 'hash' (mismatch), 'closed' (channel went away), 'protocol'. */
  onFailed(id: string, reason: 'cancelled' | 'hash' | 'closed' | 'protocol'): void
}

/** Chunk boundaries for a file of `size` bytes: [start, end) pairs. */
export function chunkRanges(size: number, chunk = CHUNK_SIZE): [number, number][] {
  const out: [number, number][] = []
  for (let start = 0; start < size; start += chunk) out.push([start, Math.min(size, start + chunk)])
  return out
}

export async function sha256Hex(blob: Blob): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

interface Incoming {
  meta: FileMeta
  chunks: ArrayBuffer[]
  bytes: number
}

export class FileLink {
  private queue: Promise<void> = Promise.resolve()
  private cancelled = new Set<string>()
  private incoming: Incoming | null = null
  private wake: (() => void) | null = null

  constructor(private readonly channel: FileChannelLike, private readonly handlers: FileLinkHandlers) {
    channel.binaryType = 'arraybuffer'
    channel.bufferedAmountLowThreshold = LOW_WATER
    channel.onbufferedamountlow = () => this.poke()
    channel.onopen = () => this.poke()
    channel.onclose = () => {
      this.poke()
      if (this.incoming) this.handlers.onFailed(this.incoming.meta.id, 'closed')
      this.incoming = null
    }
    channel.onmessage = (ev: MessageEvent) => void this.receive(ev.data)
  }

  /** Queues a file; transfers on one channel run one after another so chunks need no framing. */
  send(file: Blob, meta: FileMeta): Promise<void> {
    const run = () => this.sendNow(file, meta).catch(() => this.handlers.onFailed(meta.id, 'closed'))
    this.queue = this.queue.then(run, run)
    return this.queue
  }

  /** Cancels a transfer in either direction and tells the other side. */
  cancel(id: string): void {
    this.cancelled.add(id)
    this.control({ kind: 'file-cancel', id })
    if (this.incoming?.meta.id === id) this.incoming = null
    this.poke()
  }

  private async sendNow(file: Blob, meta: FileMeta): Promise<void> {
    const { id } = meta
    const fail = (reason: 'cancelled' | 'closed') => this.handlers.onFailed(id, reason)
    if (this.cancelled.has(id)) return fail('cancelled')
    if (!(await this.waitWritable(id, 0))) return fail(this.cancelled.has(id) ? 'cancelled' : 'closed')
    this.control({ kind: 'file-meta', ...meta })
    // Read the file a block at a time (one Blob read per MiB, not per chunk), send it in 16 KiB chunks.
    for (const [blockStart, blockEnd] of chunkRanges(meta.size, READ_BLOCK)) {
      const block = await file.slice(blockStart, blockEnd).arrayBuffer()
      for (const [start, end] of chunkRanges(block.byteLength)) {
        if (!(await this.waitWritable(id))) return fail(this.cancelled.has(id) ? 'cancelled' : 'closed')
        this.channel.send(block.slice(start, end))
        this.handlers.onProgress(id, blockStart + end)
      }
    }
    const sha256 = await sha256Hex(file)
    if (this.cancelled.has(id)) return fail('cancelled')
    this.control({ kind: 'file-end', id, sha256 })
    this.handlers.onComplete(id, file, sha256)
  }

  /** Resolves true when the channel is open with room in its buffer; false if cancelled or closed. */
  private async waitWritable(id: string, room = CHUNK_SIZE): Promise<boolean> {
    for (;;) {
      if (this.cancelled.has(id)) return false
      const state = this.channel.readyState
      if (state === 'closing' || state === 'closed') return false
      if (state === 'open' && (room === 0 || this.channel.bufferedAmount <= HIGH_WATER)) return true
      await new Promise<void>((resolve) => {
        this.wake = resolve
        setTimeout(resolve, 1000) // belt and braces if an event is missed
      })
    }
  }

  private poke(): void {
    const w = this.wake
    this.wake = null
    w?.()
  }

  private control(msg: Control): void {
    if (this.channel.readyState !== 'open') return
    try {
      this.channel.send(JSON.stringify(msg))
    } catch {
      /* the channel is going away; onclose reports it */
    }
  }

  private async receive(data: unknown): Promise<void> {
    if (typeof data !== 'string') {
      const cur = this.incoming
      if (!cur) return // chunks of a transfer we cancelled
      const buf = data instanceof ArrayBuffer ? data : await (data as Blob).arrayBuffer()
      cur.chunks.push(buf)
      cur.bytes += buf.byteLength
      if (cur.bytes > cur.meta.size) {
        this.incoming = null
        this.handlers.onFailed(cur.meta.id, 'protocol')
        return
      }
      this.handlers.onProgress(cur.meta.id, cur.bytes)
      return
    }
    let msg: Partial<Control> & Record<string, unknown>
    try {
      msg = JSON.parse(data)
    } catch {
      return
    }
    const id = typeof msg.id === 'string' ? msg.id : ''
    if (!id) return
    if (msg.kind === 'file-meta') {
      const size = Number(msg.size)
      if (!Number.isFinite(size) || size < 0 || size > MAX_FILE_SIZE) {
        this.cancel(id)
        return
      }
      const meta: FileMeta = { id, name: String(msg.name ?? 'file').slice(0, 255), size, mime: String(msg.mime ?? '') }
      this.incoming = { meta, chunks: [], bytes: 0 }
      this.handlers.onIncoming(meta)
    } else if (msg.kind === 'file-end') {
      const cur = this.incoming
      if (!cur || cur.meta.id !== id) return
      this.incoming = null
      const blob = new Blob(cur.chunks, { type: cur.meta.mime || 'application/octet-stream' })
      const hash = await sha256Hex(blob)
      if (cur.bytes !== cur.meta.size || hash !== msg.sha256) this.handlers.onFailed(id, 'hash')
      else this.handlers.onComplete(id, blob, hash)
    } else if (msg.kind === 'file-cancel') {
      const wasActive = this.incoming?.meta.id === id
      if (wasActive) this.incoming = null
      if (!this.cancelled.has(id)) {
        this.cancelled.add(id)
        this.poke()
        if (wasActive) this.handlers.onFailed(id, 'cancelled')
      }
    }
  }
}
