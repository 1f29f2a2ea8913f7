// SfuLink: this member's one RTCPeerConnection to the server's SFU in a big room (docs/protocol.md
// "SFU (extension)"). The server makes every offer: the `publish` m-lines carry this member's mic,
// camera (simulcast h/m/l) and screen; every other m-line carries one track of another member,
// named by the offer's `tracks` map (mid -> member, kind, source). Offers are applied one after
// another; each is answered. With a frame key (frameCrypto.ts) every sent frame is encrypted and
// every received one decrypted in a worker, so the server forwards media it cannot read.
import type { SfuOffer, SfuPublish, SfuSource, SfuTrack, SfuView } from '../signal/messages'
import type { FrameCrypto } from './frameCrypto'

export interface SfuSignals {
  answer(sdp: string): void
  candidate(candidate: string): void
  view(views: SfuView[]): void
  unpublish(): void
}

export interface SfuLinkOptions {
  signals: SfuSignals
  getStream: () => MediaStream | null
  getScreen: () => MediaStream | null
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection
  /** Encrypts and decrypts frames (null: the media is not end-to-end encrypted). */
  crypto?: FrameCrypto | null
  /** The track map changed: members' streams were made, changed or dropped. */
  onTracks?: () => void
  onConnectionState?: (state: RTCPeerConnectionState) => void
  /** How often to look for members' media decoding (getStats). */
  pollMs?: number
  /** A member's media from the SFU decodes (its video, or its audio when it sends no video). */
  onDecoding?: (from: string) => void
}

/** Simulcast layers of the camera: scale and ceiling per rid (contract point 1). */
export const LAYERS: Record<string, { scaleResolutionDownBy: number; maxBitrate: number }> = {
  h: { scaleResolutionDownBy: 1, maxBitrate: 1_200_000 },
  m: { scaleResolutionDownBy: 2, maxBitrate: 400_000 },
  l: { scaleResolutionDownBy: 4, maxBitrate: 150_000 },
}

/** What a published m-line carries; servers before the screen m-line say no source (by kind). */
export function publishSource(p: Pick<SfuPublish, 'kind' | 'source'>): SfuSource {
  return p.source ?? (p.kind === 'audio' ? 'mic' : 'camera')
}

/** One member's tracks as the offer's map names them: mid per source. */
export interface MemberMids {
  mic?: string
  camera?: string
  screen?: string
}

/** The offer's `tracks`, by member (missing `source`: mic or camera by kind; the first of each wins). */
export function tracksByMember(tracks: readonly SfuTrack[]): Map<string, MemberMids> {
  const out = new Map<string, MemberMids>()
  for (const t of tracks) {
    const source = t.source ?? (t.kind === 'audio' ? 'mic' : 'camera')
    if ((source === 'mic') !== (t.kind === 'audio')) continue
    let m = out.get(t.from)
    if (!m) out.set(t.from, (m = {}))
    m[source] ??= t.mid
  }
  return out
}

/** The encodings to set on the camera's sender: each rid the browser made gets its layer. */
export function simulcastEncodings(encodings: readonly RTCRtpEncodingParameters[]): RTCRtpEncodingParameters[] {
  return encodings.map((e) => {
    const layer = e.rid ? LAYERS[e.rid] : undefined
    return layer ? { ...e, ...layer } : e
  })
}

/**
 * Sends `sfu-view` at most once per `everyMs`, and only what changed since the last one sent: a
 * size per mid, rounded to even device pixels, 0x0 for a tile not shown.
 */
export class ViewThrottle {
  private wanted = new Map<string, { width: number; height: number }>()
  private sent = new Map<string, string>()
  private timer: ReturnType<typeof setTimeout> | null = null
  private last = -Infinity

  constructor(
    private readonly send: (views: SfuView[]) => void,
    private readonly everyMs = 250,
    private readonly now: () => number = () => performance.now(),
  ) {}

  set(mid: string, width: number, height: number): void {
    const size = { width: Math.max(0, Math.round(width / 2) * 2), height: Math.max(0, Math.round(height / 2) * 2) }
    if (!size.width || !size.height) size.width = size.height = 0
    this.wanted.set(mid, size)
    this.schedule()
  }

  /**
   * Sends every wanted size again at the next tick. After each answer: the server applies a view
   * only to m-lines whose answer it has, so a size sent while its offer was pending was dropped.
   */
  resend(): void {
    this.sent.clear()
    if (this.wanted.size) this.schedule()
  }

  /** Forgets mids the server no longer offers (they are not sent again). */
  keep(mids: ReadonlySet<string>): void {
    for (const mid of [...this.wanted.keys()]) if (!mids.has(mid)) this.wanted.delete(mid)
    for (const mid of [...this.sent.keys()]) if (!mids.has(mid)) this.sent.delete(mid)
  }

  private schedule(): void {
    if (this.timer) return
    const wait = Math.max(0, this.last + this.everyMs - this.now())
    this.timer = setTimeout(() => {
      this.timer = null
      this.flush()
    }, wait)
  }

  /** Sends what changed now (called by the timer). */
  flush(): void {
    const views: SfuView[] = []
    for (const [mid, s] of this.wanted) {
      const key = `${s.width}x${s.height}`
      if (this.sent.get(mid) === key) continue
      this.sent.set(mid, key)
      views.push({ mid, ...s })
    }
    if (!views.length) return
    this.last = this.now()
    this.send(views)
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }
}

/** A member's media from the SFU: the camera stream (with its mic) and the shared screen. */
export interface SfuStreams {
  stream: MediaStream | null
  screen: MediaStream | null
}

export class SfuLink {
  readonly pc: RTCPeerConnection
  /** The last offer's map, by member. */
  members = new Map<string, MemberMids>()
  /** Whether the server speaks this session's additions (sources, sfu-view, sfu-unpublish). */
  extended = false
  /** Whether the server gave a screen m-line (else the screen goes on the camera's). */
  screenLine = false
  private streams = new Map<string, SfuStreams & { key: string }>()
  private publish: SfuPublish[] = []
  private queue: Promise<void> = Promise.resolve()
  private closed = false
  /** Whether an offer of this connection came (the first has no tracks). */
  private offered = false
  private readonly views: ViewThrottle
  private decoding = new Set<string>()
  private pollTimer: ReturnType<typeof setInterval> | null = null
  private transformed = new WeakSet<RTCRtpSender | RTCRtpReceiver>()
  private sharing = false
  /** The transforms made before the first offer, being set up. */
  private early: Promise<void>[] = []

  constructor(private readonly opts: SfuLinkOptions) {
    const create = opts.createPeerConnection ?? ((c) => new RTCPeerConnection(c))
    // The SFU is ICE-lite with its own candidate in the offer: no STUN or TURN needed here.
    this.pc = create({ bundlePolicy: 'max-bundle' })
    this.sharing = !!opts.getScreen()
    this.views = new ViewThrottle((v) => opts.signals.view(v))
    this.pc.onicecandidate = ({ candidate }) => {
      if (candidate?.candidate && !this.closed) opts.signals.candidate(candidate.candidate)
    }
    this.pc.onconnectionstatechange = () => opts.onConnectionState?.(this.pc.connectionState)
    const every = opts.pollMs ?? 250
    if (every > 0) this.pollTimer = setInterval(() => void this.poll(), every)
    // Measured with Chromium 156: when every transform is made after the server's first offer,
    // the camera's frames skip its sender transform and go out unencrypted (audio's do not).
    // Senders made and transformed before that offer work, and make the later ones work too;
    // the offer then takes them over for its first m-lines of their kinds, and attachLocal puts
    // the right track on each published m-line.
    if (opts.crypto) {
      const stream = opts.getStream()
      for (const track of [stream?.getAudioTracks()[0], stream?.getVideoTracks()[0]]) {
        if (!track || !stream) continue
        this.early.push(this.protect(this.pc.addTrack(track, stream), 'encrypt', track.kind))
      }
    }
  }

  /** Applies a server offer and answers it (after any offer before it). */
  handleOffer(offer: SfuOffer): Promise<void> {
    // The first offer after `sfu-join` has the publish m-lines only (docs/protocol.md). One with
    // tracks before it was made for this member's previous SFU connection (in flight when the
    // connection was made again): its answer would be taken for the new one's and refused.
    if (!this.offered && offer.tracks.length > 0) return this.queue
    this.offered = true
    this.queue = this.queue.then(() => this.apply(offer)).catch((e) => console.warn('peerbox: sfu offer', e))
    return this.queue
  }

  private async apply(offer: SfuOffer): Promise<void> {
    if (this.closed) return
    const pc = this.pc
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp })
    this.publish = offer.publish
    this.extended = offer.publish.some((p) => p.source !== undefined)
    this.screenLine = offer.publish.some((p) => p.source === 'screen')
    const publishMids = new Set(offer.publish.map((p) => p.mid))
    for (const t of pc.getTransceivers()) {
      if (!t.mid || !publishMids.has(t.mid)) continue
      if (t.direction !== 'sendonly') t.direction = 'sendonly'
    }
    const ready = await this.attachLocal()
    ready.push(...this.early)
    this.members = tracksByMember(offer.tracks)
    const offered = new Set(offer.tracks.map((t) => t.mid))
    for (const t of pc.getTransceivers()) {
      if (t.mid && offered.has(t.mid)) ready.push(this.protect(t.receiver, 'decrypt', t.receiver.track.kind))
    }
    this.views.keep(offered)
    // The answer starts the new streams: their transforms must be in place by then.
    await Promise.all(ready)
    if (this.closed) return
    await pc.setLocalDescription(await pc.createAnswer())
    if (this.closed) return
    this.opts.signals.answer(pc.localDescription!.sdp)
    this.views.resend()
    await this.setLayers()
    this.rebuildStreams()
  }

  private transceiverOf(source: SfuSource): RTCRtpTransceiver | undefined {
    const p = this.publish.find((x) => publishSource(x) === source)
    return p ? this.pc.getTransceivers().find((t) => t.mid === p.mid) : undefined
  }

  /** What each published m-line should send now: mic, camera (or the screen, without a screen m-line), screen. */
  private localTrack(source: SfuSource): MediaStreamTrack | null {
    const stream = this.opts.getStream()
    const screen = this.sharing ? this.opts.getScreen() : null
    if (source === 'mic') return stream?.getAudioTracks()[0] ?? null
    if (source === 'screen') return screen?.getVideoTracks()[0] ?? null
    if (!this.screenLine && screen?.getVideoTracks()[0]) return screen.getVideoTracks()[0]!
    return stream?.getVideoTracks()[0] ?? null
  }

  /** Puts this member's tracks on the published m-lines; returns the transforms being set up. */
  private async attachLocal(): Promise<Promise<void>[]> {
    const stream = this.opts.getStream()
    const ready: Promise<void>[] = []
    for (const source of ['mic', 'camera', 'screen'] as const) {
      const t = this.transceiverOf(source)
      if (!t) continue
      ready.push(this.protect(t.sender, 'encrypt', source === 'mic' ? 'audio' : 'video'))
      const track = this.localTrack(source)
      if (t.sender.track !== track) await t.sender.replaceTrack(track)
      if (stream && source !== 'screen') t.sender.setStreams?.(stream)
    }
    return ready
  }

  /** Puts the frame transform on a sender or receiver, once; resolves when it is set up. */
  private protect(x: RTCRtpSender | RTCRtpReceiver, op: 'encrypt' | 'decrypt', kind: string): Promise<void> {
    const crypto = this.opts.crypto
    if (!crypto || this.transformed.has(x)) return Promise.resolve()
    this.transformed.add(x)
    return crypto.attach(x, op, kind === 'audio' ? 'audio' : 'video')
  }

  /** The camera's simulcast layers: scale and bitrate per rid the browser made from the offer. */
  private async setLayers(): Promise<void> {
    const t = this.transceiverOf('camera')
    if (!t) return
    const params = t.sender.getParameters()
    if (!params.encodings || params.encodings.length < 2) return
    const encodings = simulcastEncodings(params.encodings)
    if (encodings.every((e, i) => e.scaleResolutionDownBy === params.encodings[i]!.scaleResolutionDownBy
      && e.maxBitrate === params.encodings[i]!.maxBitrate)) return
    try {
      await t.sender.setParameters({ ...params, encodings })
    } catch (e) {
      console.warn('peerbox: simulcast layers', e)
    }
  }

  /** Per member: one stream with its mic and camera, one with its screen; a new object when its tracks change. */
  private rebuildStreams(): void {
    const byMid = new Map(this.pc.getTransceivers().filter((t) => t.mid).map((t) => [t.mid!, t.receiver.track]))
    const next = new Map<string, SfuStreams & { key: string }>()
    for (const [from, mids] of this.members) {
      const cam = [mids.mic, mids.camera].filter((m): m is string => !!m && byMid.has(m))
      const scr = mids.screen && byMid.has(mids.screen) ? mids.screen : ''
      const key = `${cam.join(',')}|${scr}`
      const old = this.streams.get(from)
      if (old && old.key === key) {
        next.set(from, old)
        continue
      }
      next.set(from, {
        key,
        stream: cam.length && typeof MediaStream !== 'undefined' ? new MediaStream(cam.map((m) => byMid.get(m)!)) : null,
        screen: scr && typeof MediaStream !== 'undefined' ? new MediaStream([byMid.get(scr)!]) : null,
      })
    }
    for (const from of this.decoding) if (!next.has(from)) this.decoding.delete(from)
    this.streams = next
    this.opts.onTracks?.()
  }

  /** The member's media through the SFU (null: none offered). */
  streamsOf(from: string): SfuStreams | null {
    return this.streams.get(from) ?? null
  }

  /** Whether the member's media from the SFU has decoded. */
  isDecoding(from: string): boolean {
    return this.decoding.has(from)
  }

  /** A tile shows `from`'s camera or screen at this size in device pixels (0x0: not shown). */
  setView(from: string, source: 'camera' | 'screen', width: number, height: number): void {
    const mid = this.members.get(from)?.[source]
    if (mid && this.extended && !this.closed) this.views.set(mid, width, height)
  }

  /** Looks for members whose media started decoding (their video frames, else their audio). */
  private async poll(): Promise<void> {
    if (this.closed || this.pc.connectionState !== 'connected') return
    const waiting = [...this.members].filter(([from]) => !this.decoding.has(from))
    if (!waiting.length) return
    let report: RTCStatsReport
    try {
      report = await this.pc.getStats()
    } catch {
      return
    }
    const decoded = new Set<string>()
    for (const s of report.values() as IterableIterator<Record<string, unknown>>) {
      if (s.type !== 'inbound-rtp' || typeof s.mid !== 'string') continue
      if ((s.kind === 'video' && Number(s.framesDecoded) > 0) || (s.kind === 'audio' && Number(s.totalSamplesDecoded ?? s.packetsReceived) > 0)) {
        decoded.add(`${s.kind}:${s.mid}`)
      }
    }
    for (const [from, mids] of waiting) {
      const video = mids.camera ? decoded.has(`video:${mids.camera}`) : false
      const audio = mids.mic ? decoded.has(`audio:${mids.mic}`) : false
      // A member without a camera track decodes when its audio does.
      if (video || (!mids.camera && audio)) {
        this.decoding.add(from)
        this.opts.onDecoding?.(from)
      }
    }
  }

  /** Another camera or microphone: swaps the outgoing track. */
  async replaceTrack(kind: 'audio' | 'video'): Promise<void> {
    const source = kind === 'audio' ? 'mic' : 'camera'
    const t = this.transceiverOf(source)
    if (t && !this.closed) await t.sender.replaceTrack(this.localTrack(source))
  }

  /**
   * Starts or ends the shared screen: on the screen m-line, or (a server without one) in place of
   * the camera until it ends. Its end is told to the server (`sfu-unpublish`), which drops it for everyone.
   */
  async setScreen(on: boolean): Promise<void> {
    const was = this.sharing
    this.sharing = on
    if (this.closed) return
    const source = this.screenLine ? 'screen' : 'camera'
    const t = this.transceiverOf(source)
    if (t) await t.sender.replaceTrack(this.localTrack(source))
    if (was && !on && this.screenLine) this.opts.signals.unpublish()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.views.stop()
    if (this.pollTimer) clearInterval(this.pollTimer)
    this.pc.close()
  }
}
