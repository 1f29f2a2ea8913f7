// SfuSwitch: moves a room's media between the mesh and the server's SFU, make-before-break, as the
// server's `mode` says (docs/protocol.md "SFU (extension)"). The mesh links stay for data (chat,
// whispers, files, state) whatever the mode.
//
// To the SFU: join and publish; each member's tile shows its SFU media once that decodes, and this
// client's state tells the others whose media it gets from the SFU; the media on the link to a
// member stops once that member says it gets ours from the SFU, and only then (stopping it on a
// timer instead froze our tile for 13 s at a member whose SFU media was slow to start, on a loaded
// machine). New links in an SFU room carry no media. Back to the mesh: media goes back on every
// link, each tile shows the link's media again once new frames decode there, and the SFU
// connection ends when every tile has moved (or after 5 s).
//
// A lost SFU connection (failed, or disconnected for more than a few seconds) is made again with a
// fresh `sfu-join` (SfuRecovery: backoff, a bound); meanwhile the tiles of the members shown from
// the SFU say they are reconnecting, and once the attempts are spent the media goes back to the
// mesh links.
import { Emitter } from '../signal/emitter'
import type { SignalClient } from '../signal/client'
import type { RoomMode } from '../signal/messages'
import type { FrameCounts, FrameCrypto } from './frameCrypto'
import type { Mesh } from './mesh'
import { SfuLink } from './sfuLink'
import { SfuRecovery, type SfuRecoveryOptions } from './sfuRecovery'

export type SfuSwitchEvents = {
  /** The mode, the SFU connection or its encryption changed. */
  changed: void
  /** The members speaking now, loudest first, from the server's audio levels (`sfu-speakers`). */
  speakers: string[]
  /** The tiles whose video the SFU pauses for our bandwidth (`sfu-paused`): member ids, `id:screen` for screens. */
  paused: string[]
}

export interface SfuSwitchOptions {
  getStream: () => MediaStream | null
  getScreen: () => MediaStream | null
  /** The frame encryption for the room being joined (null: none, the media is not end-to-end encrypted). */
  getCrypto: () => Promise<FrameCrypto | null>
  /** How long to wait for the other side before moving anyway. */
  graceMs?: number
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection
  /** Timings of the SFU connection's recovery (tests). */
  recovery?: Partial<SfuRecoveryOptions>
}

/** A member's media shown from the SFU; `reconnecting` while our SFU connection is made again. */
export interface SfuMedia {
  stream: MediaStream | null
  screen: MediaStream | null
  reconnecting?: boolean
}

/** Frames decoded so far on a mesh link (video, else audio samples), to see new ones arrive. */
async function meshProgress(pc: RTCPeerConnection | undefined): Promise<number> {
  if (!pc || pc.connectionState === 'closed') return 0
  let frames = 0
  let samples = 0
  try {
    for (const s of (await pc.getStats()).values() as IterableIterator<Record<string, unknown>>) {
      if (s.type !== 'inbound-rtp') continue
      if (s.kind === 'video') frames += Number(s.framesDecoded ?? 0)
      else samples += Number(s.totalSamplesReceived ?? 0)
    }
  } catch {
    /* closed meanwhile */
  }
  return frames || samples / 1e6
}

export class SfuSwitch extends Emitter<SfuSwitchEvents> {
  mode: RoomMode = 'mesh'
  link: SfuLink | null = null
  /** Whether the SFU media is end-to-end encrypted (a room secret and a browser that can). */
  encrypted = false
  counts: FrameCounts = { encrypted: 0, decrypted: 0, dropped: 0 }
  /** Members whose media is shown from the SFU. */
  private shown = new Set<string>()
  /** Members the link's media to is off. */
  private linkOff = new Set<string>()
  private crypto: FrameCrypto | null = null
  private backTimer: ReturnType<typeof setInterval> | null = null
  private offs: (() => void)[] = []
  private readonly graceMs: number
  /** Between `mode: sfu` and the SFU link (the frame key is being derived). */
  private starting = false
  private readonly recovery: SfuRecovery

  constructor(private readonly signal: SignalClient, private readonly mesh: Mesh, private readonly opts: SfuSwitchOptions) {
    super()
    this.graceMs = opts.graceMs ?? 5000
    this.recovery = new SfuRecovery({
      ...opts.recovery,
      rejoin: () => this.rejoin(),
      giveUp: () => {
        console.warn('peerbox: sfu connection lost, media back on the mesh links')
        this.back(true)
      },
      onChange: () => {
        for (const id of this.shown) this.mesh.refreshMedia(id)
        this.emit('changed', undefined)
      },
    })
    this.offs = [
      signal.on('joined', (info) => {
        // After a reconnect the server may have ended the SFU connection: start again from the
        // mesh's media (the links are up), without a leave that could reach the new connection.
        if (this.link) this.back(true, false)
        this.mode = 'mesh'
        void this.setMode(info.mode ?? 'mesh')
      }),
      signal.on('mode', (m) => void this.setMode(m.mode)),
      signal.on('sfu-offer', (offer) => void this.link?.handleOffer(offer)),
      signal.on('sfu-speakers', (m) => this.emit('speakers', m.speakers)),
      signal.on('sfu-paused', (m) => this.emit('paused', m.paused.map((p) => (p.source === 'screen' ? `${p.from}:screen` : p.from)))),
      signal.on('error', (e) => {
        if (!['sfu-off', 'not-sfu', 'sfu-full', 'sfu-busy'].includes(e.errorType)) return
        // No SFU for us: the media stays on the mesh links.
        console.warn('peerbox: sfu', e.errorType, e.errorText)
        this.back(true)
      }),
      mesh.on('remote', (id) => this.maybeStopLink(id)),
      mesh.on('members', () => {
        for (const id of [...this.shown]) if (!mesh.remotes.has(id)) this.shown.delete(id)
        for (const id of [...this.linkOff]) if (!mesh.remotes.has(id)) this.linkOff.delete(id)
      }),
    ]
  }

  /** Whether a member's media is shown from the SFU (Mesh's sfuMedia). */
  mediaOf(id: string): SfuMedia | null {
    if (!this.shown.has(id)) return null
    const media = this.link?.streamsOf(id) ?? null
    if (!this.recovery.reconnecting) return media
    return { stream: media?.stream ?? null, screen: media?.screen ?? null, reconnecting: true }
  }

  /** Whether the SFU connection is being made again. */
  get reconnecting(): boolean {
    return this.recovery.reconnecting
  }

  /** The members whose media this client gets from the SFU, for the state message. */
  shownList(): string[] | undefined {
    return this.shown.size ? [...this.shown] : undefined
  }

  /** Whether new mesh links carry media. */
  linkMedia(): boolean {
    return this.mode !== 'sfu'
  }

  private async setMode(mode: RoomMode): Promise<void> {
    if (mode === this.mode && (mode === 'mesh' || this.link || this.starting)) return
    this.mode = mode
    if (mode === 'sfu') await this.toSfu()
    else this.back(false)
    this.emit('changed', undefined)
  }

  private async toSfu(): Promise<void> {
    this.stopBack()
    if (this.link || this.starting) return
    this.starting = true
    this.crypto?.close()
    try {
      this.crypto = await this.opts.getCrypto()
    } finally {
      this.starting = false
    }
    if (this.mode !== 'sfu' || this.link) return
    this.encrypted = !!this.crypto
    const link = new SfuLink({
      signals: {
        answer: (sdp) => this.signal.sfuAnswer(sdp),
        candidate: (c) => this.signal.sfuCandidate(c),
        view: (v) => this.signal.sfuView(v),
        unpublish: () => this.signal.sfuUnpublish(),
      },
      getStream: this.opts.getStream,
      getScreen: this.opts.getScreen,
      createPeerConnection: this.opts.createPeerConnection,
      crypto: this.crypto,
      onTracks: () => {
        for (const id of this.shown) this.mesh.refreshMedia(id)
      },
      onDecoding: (from) => {
        if (this.mode !== 'sfu' || this.link !== link) return
        this.shown.add(from)
        this.mesh.refreshMedia(from)
        this.mesh.broadcastState()
      },
      onConnectionState: (state) => {
        if (this.link === link) this.recovery.onState(state)
        this.emit('changed', undefined)
      },
    })
    if (this.crypto) this.crypto.onCounts = (c) => {
      this.counts = c
      this.emit('changed', undefined)
    }
    this.link = link
    this.signal.sfuJoin()
  }

  /**
   * A new SFU connection in place of the lost one (the server replaces the old on `sfu-join`):
   * the tiles keep showing who is shown from the SFU, marked reconnecting, until it is up.
   */
  private rejoin(): void {
    if (this.mode !== 'sfu' || !this.link) return
    this.link.close()
    this.link = null
    void this.toSfu()
  }

  /** The member gets our media from the SFU (its state says so): the link's media to it stops. */
  private maybeStopLink(id: string): void {
    if (this.mode !== 'sfu' || !this.link || this.linkOff.has(id)) return
    if (this.mesh.remotes.get(id)?.seesSfu) this.stopLink(id)
  }

  private stopLink(id: string): void {
    if (this.linkOff.has(id) || this.mode !== 'sfu') return
    this.linkOff.add(id)
    void this.mesh.setLinkMedia(id, false).catch((e) => console.warn('peerbox: link media', e))
  }

  /**
   * Back to the mesh: media on every link again; each tile moves back once the link's media shows
   * new frames; the SFU connection ends when all have moved or after the grace time. `now`: at
   * once; `tell`: send `sfu-leave`.
   */
  private back(now: boolean, tell = true): void {
    for (const id of this.linkOff) void this.mesh.setLinkMedia(id, true).catch((e) => console.warn('peerbox: link media', e))
    this.linkOff.clear()
    if (now || !this.link) {
      this.drop(tell)
      return
    }
    this.stopBack()
    const since = performance.now()
    const base = new Map<string, Promise<number>>()
    for (const id of this.shown) base.set(id, meshProgress(this.mesh.remotes.get(id)?.link?.pc))
    this.backTimer = setInterval(() => {
      if (performance.now() - since > this.graceMs) {
        this.drop()
        return
      }
      for (const id of [...this.shown]) {
        void Promise.all([base.get(id), meshProgress(this.mesh.remotes.get(id)?.link?.pc)]).then(([before, now]) => {
          if (!this.shown.has(id) || this.mode !== 'mesh' || now === undefined || before === undefined || now <= before) return
          this.shown.delete(id)
          this.mesh.refreshMedia(id)
          if (!this.shown.size) this.drop()
        })
      }
    }, 250)
  }

  private stopBack(): void {
    if (this.backTimer) clearInterval(this.backTimer)
    this.backTimer = null
  }

  /** Ends the SFU connection: every tile shows its link's media. */
  private drop(tell = true): void {
    this.stopBack()
    this.recovery.stop()
    const hadLink = !!this.link
    this.link?.close()
    this.link = null
    this.crypto?.close()
    this.crypto = null
    this.encrypted = false
    const shown = [...this.shown]
    this.shown.clear()
    for (const id of shown) this.mesh.refreshMedia(id)
    if (hadLink) {
      if (tell) this.signal.sfuLeave()
      this.mesh.broadcastState()
      this.emit('changed', undefined)
    }
  }

  /** Another camera or mic: the SFU gets it too. */
  replaceTrack(kind: 'audio' | 'video'): Promise<void> {
    return this.link?.replaceTrack(kind) ?? Promise.resolve()
  }

  setScreen(on: boolean): Promise<void> {
    return this.link?.setScreen(on) ?? Promise.resolve()
  }

  /** A tile's shown size (device pixels; 0x0: hidden), for the SFU's layer choice. */
  setView(id: string, source: 'camera' | 'screen', width: number, height: number): void {
    this.link?.setView(id, source, width, height)
  }

  /** After a logout: no SFU, mesh. */
  reset(): void {
    this.linkOff.clear()
    this.drop()
    this.mode = 'mesh'
  }

  dispose(): void {
    this.reset()
    for (const off of this.offs) off()
    this.clear()
  }
}
