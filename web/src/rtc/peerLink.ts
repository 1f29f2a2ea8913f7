// PeerLink: one RTCPeerConnection to one remote member, with perfect negotiation, trickle ICE, ICE
// restart, a second outgoing stream for a shared screen, and a relay policy switch mid-call.
import type { SessionDescription } from '../signal/messages'

export interface PeerSignals {
  /** `fresh` is true on the first offer of a link that replaces another (see PeerLinkOptions.fresh). */
  offer(description: SessionDescription, fresh?: boolean): void
  answer(description: SessionDescription): void
  candidate(candidate: RTCIceCandidateInit | null): void
}

export interface PeerLinkOptions {
  selfId: string
  remoteId: string
  config: RTCConfiguration
  signals: PeerSignals
  /** Local camera/mic; null or empty means receive-only. */
  stream: MediaStream | null
  /** The screen being shared when the link starts (its tracks go out as a stream of their own). */
  screen?: MediaStream | null
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection
  /** This link replaces a running one to the same member: its first offer says so. */
  fresh?: boolean
  /**
   * Whether the link sends media now (false: a data-only link in an SFU room; its senders exist
   * without tracks, so media comes back with setMediaOn(true) and no renegotiation).
   */
  mediaOn?: boolean
  /** How long `disconnected` may last before an ICE restart. */
  disconnectedGraceMs?: number
  /** A remote track arrived; the remote side's streams (camera, screen) stay apart, keyed by their id. */
  onTrack?: (streamId: string, stream: MediaStream) => void
  onConnectionState?: (state: RTCPeerConnectionState) => void
}

export class PeerLink {
  readonly pc: RTCPeerConnection
  readonly polite: boolean
  readonly chatChannel: RTCDataChannel
  readonly fileChannel: RTCDataChannel
  /** What the other side sends, by its stream id (its msid): the camera, and a screen while it shares. */
  readonly remoteStreams = new Map<string, MediaStream>()
  makingOffer = false
  ignoreOffer = false
  isSettingRemoteAnswerPending = false
  private pendingCandidates: RTCIceCandidateInit[] = []
  private mediaAttached = false
  private cameraSenders = new Map<string, RTCRtpSender>()
  /** Senders of the shared screen, kept after the share ends so the next share needs no renegotiation. */
  private screenSenders = new Map<string, RTCRtpSender>()
  private disconnectTimer: ReturnType<typeof setTimeout> | null = null
  private closed = false
  private mediaOn: boolean
  /** The camera and mic tracks to send while media is on (replaceTrack keeps them up to date). */
  private cameraTracks = new Map<string, MediaStreamTrack | null>()

  constructor(private readonly opts: PeerLinkOptions) {
    // String comparison of session ids: both sides agree on who yields in a glare.
    this.polite = opts.selfId > opts.remoteId
    this.mediaOn = opts.mediaOn !== false
    const create = opts.createPeerConnection ?? ((c) => new RTCPeerConnection(c))
    this.pc = create(opts.config)
    // Negotiated channels exist on both sides at once, so no ondatachannel race.
    this.chatChannel = this.pc.createDataChannel('chat', { negotiated: true, id: 0 })
    this.fileChannel = this.pc.createDataChannel('file', { negotiated: true, id: 1 })
    this.fileChannel.binaryType = 'arraybuffer'
    this.wire()
  }

  /** The side that starts (an existing member seeing a login) attaches media now; that triggers the offer. */
  start(): void {
    this.attachMedia()
  }

  private wire(): void {
    const pc = this.pc
    pc.onnegotiationneeded = async () => {
      if (pc.signalingState !== 'stable') return
      try {
        this.makingOffer = true
        await pc.setLocalDescription()
        const d = pc.localDescription
        if (d && d.type === 'offer' && !this.closed) {
          this.opts.signals.offer({ type: d.type, sdp: d.sdp }, this.opts.fresh === true)
          this.opts.fresh = false
        }
      } catch (e) {
        console.warn('peerbox: negotiation failed', e)
      } finally {
        this.makingOffer = false
      }
    }
    pc.onicecandidate = ({ candidate }) => {
      if (!this.closed) this.opts.signals.candidate(candidate ? candidate.toJSON() : null)
    }
    pc.ontrack = (ev) => {
      if (typeof MediaStream === 'undefined') return
      // A track sent without a stream (the seed's client does not) counts as the camera.
      const id = ev.streams?.[0]?.id ?? ''
      let stream = this.remoteStreams.get(id)
      if (!stream) this.remoteStreams.set(id, (stream = new MediaStream()))
      if (!stream.getTracks().includes(ev.track)) stream.addTrack(ev.track)
      this.opts.onTrack?.(id, stream)
    }
    pc.oniceconnectionstatechange = () => this.onIceState(pc.iceConnectionState)
    pc.onconnectionstatechange = () => this.opts.onConnectionState?.(pc.connectionState)
  }

  /** Adds local tracks, or recvonly transceivers when there are none, so receive-only members still get media. */
  private attachMedia(): void {
    if (this.mediaAttached) return
    this.mediaAttached = true
    const stream = this.opts.stream
    const tracks = stream ? stream.getTracks() : []
    for (const track of tracks) {
      const sender = this.pc.addTrack(track, stream!)
      this.cameraSenders.set(track.kind, sender)
      this.cameraTracks.set(track.kind, track)
      // Nothing flows before the first answer: the sender is there, its track is not.
      if (!this.mediaOn) void sender.replaceTrack(null)
    }
    const kinds = new Set(tracks.map((t) => t.kind))
    const existing = this.pc.getTransceivers().map((t) => t.receiver.track?.kind)
    for (const kind of ['audio', 'video'] as const) {
      if (!kinds.has(kind) && !existing.includes(kind)) this.pc.addTransceiver(kind, { direction: 'recvonly' })
    }
    if (this.opts.screen) this.addScreenTracks(this.opts.screen)
  }

  private addScreenTracks(screen: MediaStream): void {
    for (const track of screen.getTracks()) {
      if (this.screenSenders.has(track.kind)) continue
      const sender = this.pc.addTrack(track, screen)
      this.screenSenders.set(track.kind, sender)
      if (!this.mediaOn) void sender.replaceTrack(null)
    }
  }

  /**
   * Starts (a stream) or ends (null) sending a shared screen next to the camera. The first share
   * adds its tracks (one renegotiation); later shares and the end of one swap tracks in the same
   * senders. Before media is attached, the screen waits for attachMedia.
   */
  async setScreen(screen: MediaStream | null): Promise<void> {
    this.opts.screen = screen
    if (!this.mediaAttached || this.closed) return
    const tracks = new Map(screen && this.mediaOn ? screen.getTracks().map((t) => [t.kind, t]) : [])
    for (const [kind, sender] of this.screenSenders) await sender.replaceTrack(tracks.get(kind) ?? null)
    if (screen) this.addScreenTracks(screen)
  }

  /** A fresh link that has not had its first answer yet (glare between two replacements). */
  get awaitingFirstAnswer(): boolean {
    return !this.pc.remoteDescription && this.pc.signalingState === 'have-local-offer'
  }

  /**
   * Relay no longer required: the wider policy and an ICE restart bring a direct path back at once.
   * (The other way needs a new connection: Chromium keeps using the host port it already has
   * through an ICE restart, so Mesh replaces the link instead.)
   */
  setRelayOnly(relay: boolean): void {
    if (this.closed) return
    const policy: RTCIceTransportPolicy = relay ? 'relay' : 'all'
    const config = this.pc.getConfiguration()
    if (config.iceTransportPolicy === policy) return
    this.pc.setConfiguration({ ...config, iceTransportPolicy: policy })
    this.restartIce()
  }

  /** Perfect negotiation: https://w3c.github.io/webrtc-pc/#perfect-negotiation-example */
  async handleDescription(description: SessionDescription): Promise<void> {
    const pc = this.pc
    const readyForOffer = !this.makingOffer && (pc.signalingState === 'stable' || this.isSettingRemoteAnswerPending)
    const offerCollision = description.type === 'offer' && !readyForOffer
    this.ignoreOffer = !this.polite && offerCollision
    if (this.ignoreOffer) return
    this.isSettingRemoteAnswerPending = description.type === 'answer'
    try {
      await pc.setRemoteDescription(description)
    } finally {
      this.isSettingRemoteAnswerPending = false
    }
    await this.flushCandidates()
    if (description.type === 'offer') {
      // Attach after the remote offer so addTrack reuses the offered transceivers instead of adding m-lines.
      this.attachMedia()
      await pc.setLocalDescription()
      const d = pc.localDescription
      if (d && !this.closed) this.opts.signals.answer({ type: d.type, sdp: d.sdp })
    }
  }

  async handleCandidate(candidate: RTCIceCandidateInit | null): Promise<void> {
    if (!this.pc.remoteDescription) {
      if (candidate) this.pendingCandidates.push(candidate)
      return
    }
    await this.addCandidate(candidate)
  }

  private async flushCandidates(): Promise<void> {
    const queued = this.pendingCandidates
    this.pendingCandidates = []
    for (const c of queued) await this.addCandidate(c)
  }

  private async addCandidate(candidate: RTCIceCandidateInit | null): Promise<void> {
    try {
      await this.pc.addIceCandidate(candidate ?? undefined)
    } catch (e) {
      if (!this.ignoreOffer) console.warn('peerbox: bad ICE candidate', e)
    }
  }

  private onIceState(state: RTCIceConnectionState): void {
    if (state === 'failed') {
      this.restartIce()
    } else if (state === 'disconnected') {
      if (!this.disconnectTimer) {
        this.disconnectTimer = setTimeout(() => {
          this.disconnectTimer = null
          if (this.pc.iceConnectionState === 'disconnected') this.restartIce()
        }, this.opts.disconnectedGraceMs ?? 5000)
      }
    } else {
      this.clearDisconnectTimer()
    }
  }

  /** Triggers negotiationneeded with an ICE-restart offer; also called when the browser comes back online. */
  restartIce(): void {
    if (this.closed) return
    this.clearDisconnectTimer()
    this.pc.restartIce()
  }

  /** Another camera or microphone: swap the outgoing track without renegotiating. */
  async replaceTrack(kind: 'audio' | 'video', track: MediaStreamTrack | null): Promise<void> {
    this.cameraTracks.set(kind, track)
    if (this.mediaOn) await this.cameraSenders.get(kind)?.replaceTrack(track)
  }

  /** Takes the media off the link (data only: chat, files, state go on) or puts it back. */
  async setMediaOn(on: boolean): Promise<void> {
    if (this.mediaOn === on || this.closed) return
    this.mediaOn = on
    for (const [kind, sender] of this.cameraSenders) await sender.replaceTrack(on ? this.cameraTracks.get(kind) ?? null : null)
    await this.setScreen(this.opts.screen ?? null)
  }

  private clearDisconnectTimer(): void {
    if (this.disconnectTimer) clearTimeout(this.disconnectTimer)
    this.disconnectTimer = null
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.clearDisconnectTimer()
    try {
      this.chatChannel.close()
      this.fileChannel.close()
    } catch {
      /* already closed */
    }
    this.pc.close()
  }
}
