// Mesh: wires the signalling client to one PeerLink (+ chat and file links) per remote member.
// With a room secret (the link's fragment), every offer and answer carries this member's signed
// DTLS fingerprints and those received are checked before they are applied (see trust.ts); signal
// events are then handled one after another, in order, across the checks' awaits. The chat
// history travels between members over the chat channel (history.ts): answered here, asked for here.
import { Emitter } from '../signal/emitter'
import type { SignalClient } from '../signal/client'
import type { JoinedInfo, SessionDescription } from '../signal/messages'
import { ChatLink, type ChannelLike, type ChatMessage, type StateMessage } from './chat'
import { FileLink, type FileChannelLike, type FileMeta } from './files'
import { AskerLimits, HistoryPager, pageOf, readAsk, readPage, utf8Length, type Cursor, type PastState } from './history'
import { PeerLink } from './peerLink'
import { RateLimit, REACTION_MAX_RECEIVED, REACTION_WINDOW_MS, type Reaction } from './reactions'
import { qualityOf, summarize, type LinkStats, type Quality, type StatEntry } from './stats'
import { certificateFingerprints, fingerprintsOf, safetyCode, type RoomTrust } from './trust'

/**
 * What we know of who is at the other end: `verified` (its fingerprints are signed with the room
 * secret), `unverified` (no secret in our link), `checking`, or `refused` (a signature missing or
 * wrong: the link is not made).
 */
export type Trust = 'checking' | 'verified' | 'unverified' | 'refused'

export interface Remote {
  id: string
  name: string
  link: PeerLink | null
  chat: ChatLink | null
  files: FileLink | null
  /** The camera (and mic) stream; null until a track arrives. */
  stream: MediaStream | null
  /** The shared screen's stream while the member shares, next to the camera. */
  screen: MediaStream | null
  /** The stream id the member's state names as its screen. */
  screenId: string
  mic: boolean
  cam: boolean
  sharing: boolean
  hand: boolean
  /** Recording the call (what its state says: a modified client could record and say nothing). */
  recording: boolean
  connection: RTCPeerConnectionState
  /** The last getStats() summary of the link, and the quality read from it. */
  stats: LinkStats | null
  quality: Quality
  /**
   * False while a resumed session has not seen this member back on the server (it restarted): the
   * link keeps running peer to peer until the member logs in again, or the link fails.
   */
  confirmed: boolean
  trust: Trust
  /** The safety code both ends of the link read the same (empty until connected). */
  code: string
  /** Its media comes from the SFU now (not over the link, which carries data only). */
  sfu: boolean
  /** It gets this member's media from the SFU now (its state says so): the link's media can stop. */
  seesSfu: boolean
  /** Its media is shown from the SFU, and our SFU connection is being made again. */
  sfuReconnecting: boolean
}

export type MeshEvents = {
  /** Members were added or removed. */
  members: void
  /** Someone came in or went away (not sent for the members already there when we join). */
  presence: { id: string; name: string; joined: boolean }
  /** Someone raised their hand. */
  hand: { id: string; name: string }
  /** A member sent a quick reaction (known set, within the receive rate limit). */
  reaction: { id: string; name: string; emoji: Reaction }
  /** Something about one member changed (stream, state badges, connection). */
  remote: string
  chat: ChatMessage
  /** Older public messages from a member, checked, oldest first (history.ts). */
  history: ChatMessage[]
  /** Where scrolling back through the chat stands. */
  pastState: PastState
  joined: JoinedInfo
  fileIncoming: { peerId: string; meta: FileMeta }
  fileProgress: { peerId: string; id: string; bytes: number }
  fileComplete: { peerId: string; id: string; blob: Blob; sha256: string }
  fileFailed: { peerId: string; id: string; reason: string }
  /** A member's offer or answer failed the room secret's check: nothing was connected. */
  refused: { id: string; name: string }
}

export interface MeshOptions {
  getStream: () => MediaStream | null
  /** The screen being shared, if any (sent as a stream of its own). */
  getScreen?: () => MediaStream | null
  relayOnly: () => boolean
  getState: () => { mic: boolean; cam: boolean; sharing?: boolean; screen?: string; hand?: boolean; recording?: boolean; sfu?: string[] }
  /** In an SFU room: the member's media from the SFU, shown instead of the link's (null: the link's). */
  sfuMedia?: (id: string) => { stream: MediaStream | null; screen: MediaStream | null; reconnecting?: boolean } | null
  /** Whether a new link sends media (false in an SFU room: data only). */
  linkMedia?: () => boolean
  /** How often to read each link's statistics (0: never). */
  statsEveryMs?: number
  /** Tests pass a fake; browsers use RTCPeerConnection. */
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection
  /** The DTLS certificate to use with a room secret (its fingerprints are signed before any offer). */
  generateCertificate?: () => Promise<RTCCertificate>
}

const newId = () => crypto.randomUUID()

export class Mesh extends Emitter<MeshEvents> {
  readonly remotes = new Map<string, Remote>()
  selfId = ''
  /** The ICE servers (with TURN credentials) from the last `joined`. */
  iceServers: RTCIceServer[] = []
  private outbox = new Map<string, ChatMessage[]>()
  /** See setHistorySource. */
  private historySource: () => readonly ChatMessage[] | null = () => null
  /** Whether this session has asked for the chat so far (or knows it came in first). */
  private historyBegun = false
  /** Asks members for older chat, one at a time. */
  readonly history: HistoryPager
  private limits = new AskerLimits()
  private offs: (() => void)[] = []
  private statsTimer: ReturnType<typeof setInterval> | null = null
  /** The room secret's key for the call being joined (null: nothing to verify). */
  private trust: RoomTrust | null = null
  /** One certificate for all links of this page, so its fingerprints can be signed ahead. */
  private certificate: RTCCertificate | null = null
  /** This member's signed fingerprints, sent beside every offer and answer. */
  private auth: string | undefined
  /** Signal events waiting while an earlier one awaits a check. */
  private queue: (() => void | Promise<void>)[] = []
  private running = false
  /** This page's own reactions, limited before they go out. */
  private reactionLimit = new RateLimit()
  /** Each member's reactions, limited as they arrive (a modified client may send more). */
  private reactionsIn = new Map<string, RateLimit>()

  constructor(private readonly signal: SignalClient, private readonly opts: MeshOptions) {
    super()
    this.history = new HistoryPager({
      members: () => [...this.remotes.values()].map((r) => ({ id: r.id, open: r.chat?.open === true })),
      send: (to, ask) => void this.remotes.get(to)?.chat?.sendOnce(ask),
      onMessages: (messages) => this.emit('history', messages),
      onState: (state) => this.emit('pastState', state),
    })
    const every = opts.statsEveryMs ?? 2000
    if (every > 0) this.statsTimer = setInterval(() => void this.readStats(), every)
    this.offs = [
      signal.on('joined', (info) => this.serial(() => this.onJoined(info))),
      signal.on('login', (m) => this.serial(() => {
        const known = this.remotes.get(m.from)
        this.addMember(m.from, m.username)
        if (known) known.confirmed = true
        const link = this.connect(m.from)
        link.start()
        // Back after a server restart over a link that did not survive it (a relay allocation
        // is gone with the server): the ICE restart it tried while the member was away went nowhere.
        if (known && (known.connection === 'failed' || known.connection === 'disconnected')) link.restartIce()
        if (!known) this.emit('presence', { id: m.from, name: m.username, joined: true })
      })),
      signal.on('offer', (m) => this.serial(() => this.checked(m.from, m.username ?? '', m.description, m.auth, () => {
        const r = this.remotes.get(m.from)!
        if (m.fresh && r.link) {
          // Both sides replaced their link at the same moment: the impolite side's offer wins.
          if (r.link.awaitingFirstAnswer && !r.link.polite) return
          this.dropLink(r)
        }
        void this.connect(m.from).handleDescription(m.description).catch((e) => console.warn('peerbox: offer', e))
      }))),
      signal.on('answer', (m) => this.serial(() => {
        if (!this.remotes.get(m.from)?.link) return
        return this.checked(m.from, '', m.description, m.auth, () => {
          void this.remotes.get(m.from)?.link?.handleDescription(m.description).catch((e) => console.warn('peerbox: answer', e))
        })
      })),
      signal.on('candidate', (m) => this.serial(() => void this.remotes.get(m.from)?.link?.handleCandidate(m.candidate))),
      signal.on('logout', (m) => this.serial(() => {
        const r = this.remotes.get(m.from)
        if (!r) return
        this.removeMember(m.from)
        this.emit('presence', { id: m.from, name: r.name || m.username, joined: false })
      })),
    ]
  }

  /**
   * The room secret to verify the next call's members with (null: none, they show as unverified).
   * Set before logging in.
   */
  setTrust(trust: RoomTrust | null): void {
    this.trust = trust
  }

  /** Runs signal handlers in arrival order; one that returns a promise holds the later ones until it settles. */
  private serial(fn: () => void | Promise<void>): void {
    this.queue.push(fn)
    if (!this.running) this.drain()
  }

  private drain(): void {
    this.running = true
    while (this.queue.length) {
      let result: void | Promise<void> = undefined
      try {
        result = this.queue.shift()!()
      } catch (e) {
        console.warn('peerbox: signal handler', e)
      }
      if (result instanceof Promise) {
        void result.catch((e) => console.warn('peerbox: signal handler', e)).then(() => this.drain())
        return
      }
    }
    this.running = false
  }

  /**
   * Applies a member's offer or answer with `apply` once its signature checks out (at once when
   * there is no room secret); a missing or wrong one refuses it: no link, and the member is marked.
   */
  private checked(from: string, name: string, d: SessionDescription, auth: string | undefined, apply: () => void): void | Promise<void> {
    if (!this.remotes.has(from)) this.addMember(from, name)
    const trust = this.trust
    if (!trust) return apply()
    if (auth === undefined) {
      // A member who opened the room without its key (a bare link, the seed's client) signs
      // nothing: the call works, and that member shows as not verified. A signature that is
      // there but wrong is what a swapped fingerprint looks like, and is refused below.
      const r = this.remotes.get(from)
      if (r && r.trust !== 'refused') r.trust = 'unverified'
      apply()
      this.emit('remote', from)
      return
    }
    return trust.verify(from, fingerprintsOf(d.sdp), auth).then((ok) => {
      const r = this.remotes.get(from)
      if (!r) return
      if (!ok) {
        const was = r.trust
        r.trust = 'refused'
        this.dropLink(r)
        this.emit('remote', from)
        if (was !== 'refused') this.emit('refused', { id: from, name: r.name })
        return
      }
      r.trust = 'verified'
      apply()
      this.emit('remote', from)
    })
  }

  private onJoined(info: JoinedInfo): void | Promise<void> {
    const resumed = info.resumed === true && this.selfId !== '' && info.sessionId === this.selfId
    if (resumed) {
      // Our own session id back (a reconnect, or a server restart): every link that still runs
      // stays, so nobody renegotiates. Members the server does not list yet are kept unconfirmed
      // until they log in again (they are reconnecting too) or their link fails.
      const listed = new Set(info.members.map((m) => m.sessionId))
      for (const r of [...this.remotes.values()]) {
        r.confirmed = listed.has(r.id)
        if (!r.confirmed && !r.link) this.removeMember(r.id, false)
      }
    } else {
      // A new session id: the others renegotiate with it, so old links are dead.
      for (const id of [...this.remotes.keys()]) this.removeMember(id, false)
    }
    this.selfId = info.sessionId
    this.iceServers = info.iceServers
    this.auth = undefined
    const done = () => {
      for (const m of info.members) this.addMember(m.sessionId, m.username, false)
      this.emit('members', undefined)
      this.emit('joined', info)
      if (resumed) return
      this.history.reset()
      this.historyBegun = false
      this.beginHistory()
    }
    const trust = this.trust
    if (!trust) return done()
    // Sign before anything else is handled: the first offers follow `joined` at once.
    return (async () => {
      try {
        const generate = this.opts.generateCertificate
          ?? (() => RTCPeerConnection.generateCertificate({ name: 'ECDSA', namedCurve: 'P-256' } as AlgorithmIdentifier))
        this.certificate ??= await generate()
        this.auth = await trust.sign(info.sessionId, certificateFingerprints(this.certificate))
      } catch (e) {
        // Without a signature the others refuse our links, and say so; ours still check theirs.
        console.warn('peerbox: could not sign the DTLS fingerprint', e)
      }
      done()
    })()
  }

  private addMember(id: string, name: string, notify = true): void {
    const existing = this.remotes.get(id)
    if (existing) {
      if (name) existing.name = name
      return
    }
    this.remotes.set(id, {
      id, name, link: null, chat: null, files: null, stream: null, screen: null, screenId: '',
      mic: true, cam: true, sharing: false, hand: false, recording: false, connection: 'new', stats: null, quality: 'unknown',
      confirmed: true,
      trust: this.trust ? 'checking' : 'unverified', code: '', sfu: false, seesSfu: false, sfuReconnecting: false,
    })
    if (notify) this.emit('members', undefined)
  }

  /**
   * Returns the member's PeerLink, creating it (with its chat and file links) when missing.
   * `fresh`: it replaces a link that was running, and its first offer says so.
   */
  private connect(id: string, fresh = false): PeerLink {
    const r = this.remotes.get(id)!
    if (r.link) return r.link
    const link = new PeerLink({
      selfId: this.selfId,
      remoteId: id,
      // max-bundle: the offerer gathers for one transport instead of one per media type
      // (audio, video, data) until the answer arrives; each transport costs one TURN
      // allocation per TURN URL (measured: 9 instead of 3 per offer).
      config: {
        iceServers: this.iceServers,
        iceTransportPolicy: this.opts.relayOnly() ? 'relay' : 'all',
        bundlePolicy: 'max-bundle',
        ...(this.certificate ? { certificates: [this.certificate] } : {}),
      },
      stream: this.opts.getStream(),
      screen: this.opts.getScreen?.() ?? null,
      fresh,
      mediaOn: this.opts.linkMedia?.() ?? true,
      createPeerConnection: this.opts.createPeerConnection,
      signals: {
        offer: (d, fresh) => this.signal.sendOffer(id, d, fresh, this.auth),
        answer: (d) => this.signal.sendAnswer(id, d, this.auth),
        candidate: (c) => this.signal.sendCandidate(id, c),
      },
      onTrack: () => {
        this.sortStreams(r)
        this.emit('remote', id)
      },
      onConnectionState: (state) => {
        r.connection = state
        if (state === 'failed' && !r.confirmed) {
          // Kept across a server restart, but neither back on the server nor reachable: gone.
          this.removeMember(id)
          this.emit('presence', { id, name: r.name, joined: false })
          return
        }
        this.emit('remote', id)
        if (state === 'connected') void this.readCode(r, link)
      },
    })
    r.link = link
    r.chat = new ChatLink(link.chatChannel as unknown as ChannelLike, {
      // History keeps who wrote each message; anything else is from this link's member.
      onChat: (msg) => {
        // `past`: history pushed to newcomers by older clients (today's ask for it instead),
        // checked as a page is. Anything else is from this link's member.
        if (!msg.past) this.emit('chat', { ...msg, from: id, fromName: r.name || msg.fromName })
        else if (this.historySource() !== null) {
          const checked = readPage({ messages: [{ ...msg, past: undefined }] }, undefined)
          if (checked?.length) this.emit('history', checked)
        }
      },
      onOpen: () => this.history.wake(),
      onHistory: (msg) => (msg.kind === 'history-ask' ? this.answerHistory(id, msg) : this.history.receive(id, msg)),
      onState: (s: StateMessage) => {
        r.mic = s.mic
        r.cam = s.cam
        r.sharing = s.sharing === true
        r.screenId = s.screen ?? ''
        if (s.hand && !r.hand) this.emit('hand', { id, name: r.name })
        r.hand = s.hand === true
        r.recording = s.recording === true
        r.seesSfu = s.sfu?.includes(this.selfId) === true
        this.sortStreams(r)
        this.emit('remote', id)
      },
      onReaction: (emoji) => {
        let limit = this.reactionsIn.get(id)
        if (!limit) this.reactionsIn.set(id, (limit = new RateLimit(REACTION_MAX_RECEIVED, REACTION_WINDOW_MS)))
        if (limit.allow()) this.emit('reaction', { id, name: r.name, emoji })
      },
    })
    r.files = new FileLink(link.fileChannel as unknown as FileChannelLike, {
      onIncoming: (meta) => this.emit('fileIncoming', { peerId: id, meta }),
      onProgress: (fid, bytes) => this.emit('fileProgress', { peerId: id, id: fid, bytes }),
      onComplete: (fid, blob, sha256) => this.emit('fileComplete', { peerId: id, id: fid, blob, sha256 }),
      onFailed: (fid, reason) => this.emit('fileFailed', { peerId: id, id: fid, reason }),
    })
    for (const msg of this.outbox.get(id) ?? []) r.chat.send(msg)
    this.outbox.delete(id)
    r.chat.send(this.stateMessage())
    this.emit('remote', id)
    return link
  }

  /**
   * Closes the member's link, keeping the member. Chat messages not yet acknowledged go out again
   * on the next link; a file transfer under way fails (its channel closes).
   */
  private dropLink(r: Remote): void {
    const unacked = [...(r.chat?.pending.values() ?? [])].filter((m): m is ChatMessage => m.kind === 'chat')
    r.chat?.close()
    r.link?.close()
    r.link = r.chat = r.files = null
    r.stream = r.screen = null
    if (unacked.length) this.outbox.set(r.id, [...unacked, ...(this.outbox.get(r.id) ?? [])])
  }

  /** Which of the member's streams is the camera and which the screen, by what its state says. */
  private sortStreams(r: Remote): void {
    const sfu = this.opts.sfuMedia?.(r.id)
    r.sfu = !!sfu
    r.sfuReconnecting = !!sfu?.reconnecting
    if (sfu) {
      // Without a screen m-line (older servers) the screen comes in place of the camera.
      r.stream = sfu.stream
      r.screen = r.sharing ? sfu.screen : null
      return
    }
    const streams = r.link?.remoteStreams ?? new Map<string, MediaStream>()
    r.stream = [...streams].find(([sid]) => !r.screenId || sid !== r.screenId)?.[1] ?? null
    r.screen = r.sharing && r.screenId ? streams.get(r.screenId) ?? null : null
  }

  private removeMember(id: string, notify = true): void {
    const r = this.remotes.get(id)
    if (!r) return
    r.chat?.close()
    r.link?.close()
    this.remotes.delete(id)
    this.outbox.delete(id)
    this.reactionsIn.delete(id)
    this.limits.forget(id)
    this.history.gone(id)
    if (notify) this.emit('members', undefined)
  }

  /** Sends a chat message to everyone, or as a whisper to one member; returns what was sent. */
  sendChat(text: string, fromName: string, to: string | null): ChatMessage {
    const msg: ChatMessage = {
      kind: 'chat', id: newId(), from: this.selfId, fromName, text, ts: Date.now(), whisper: to !== null,
    }
    const targets = to ? [to] : [...this.remotes.keys()]
    for (const id of targets) {
      const r = this.remotes.get(id)
      if (!r) continue
      if (r.chat) r.chat.send(msg)
      else this.outbox.set(id, [...(this.outbox.get(id) ?? []), msg])
    }
    return msg
  }

  /** Sends a quick reaction to everyone connected; false when over the rate limit (nothing sent). */
  sendReaction(emoji: Reaction, now = Date.now()): boolean {
    if (!this.reactionLimit.allow(now)) return false
    const id = newId()
    for (const r of this.remotes.values()) r.chat?.sendReaction(emoji, id)
    return true
  }

  /** The safety code of a connected link, from the fingerprints both descriptions in use announce. */
  private async readCode(r: Remote, link: PeerLink): Promise<void> {
    const local = link.pc.localDescription?.sdp
    const remote = link.pc.remoteDescription?.sdp
    if (!local || !remote) return
    const code = await safetyCode(fingerprintsOf(local), fingerprintsOf(remote))
    if (r.link !== link) return
    r.code = code
    this.emit('remote', r.id)
  }

  /**
   * The public messages this member keeps, oldest first, to answer history asks from; null when
   * the room's host turned history off: then nobody is answered or asked. Set by the chat's owner,
   * which may come after `joined` (the call screen is made then): the first ask waits for it.
   */
  setHistorySource(source: () => readonly ChatMessage[] | null): void {
    this.historySource = source
    this.beginHistory()
  }

  /** A newcomer asks for the chat so far; the first one in knows it is at the beginning. */
  private beginHistory(): void {
    if (this.historyBegun || !this.selfId || this.historySource() === null) return
    this.historyBegun = true
    if (this.remotes.size) this.history.load(null)
    else this.history.atStart()
  }

  /** Asks for the chat before `before` (null: the newest), if the room keeps history. */
  loadOlder(before: Cursor | null): void {
    if (this.historySource() !== null) this.history.load(before)
  }

  /**
   * Answers a member's history ask with a page of what is kept here (an empty one when history
   * is off); an asker over its limits gets nothing and asks someone else.
   */
  private answerHistory(id: string, raw: Record<string, unknown>): void {
    const ask = readAsk(raw)
    const chat = this.remotes.get(id)?.chat
    if (!ask || !chat) return
    const bytes = this.limits.allow(id)
    if (!bytes) return
    const page = pageOf(this.historySource() ?? [], { kind: 'history-ask', ...ask }, bytes)
    if (chat.sendOnce(page)) this.limits.spent(id, utf8Length(JSON.stringify(page)))
  }

  private stateMessage(): StateMessage {
    return { kind: 'state', id: newId(), ts: Date.now(), ...this.opts.getState() }
  }

  broadcastState(): void {
    const msg = this.stateMessage()
    for (const r of this.remotes.values()) r.chat?.send({ ...msg, id: newId() })
  }

  /** Reads again where the member's media comes from (the SFU or its link) and tells the views. */
  refreshMedia(id: string): void {
    const r = this.remotes.get(id)
    if (!r) return
    this.sortStreams(r)
    this.emit('remote', id)
  }

  /** Takes this member's media off the link to `id` (it gets it from the SFU) or puts it back. */
  async setLinkMedia(id: string, on: boolean): Promise<void> {
    await this.remotes.get(id)?.link?.setMediaOn(on)
  }

  /** Starts or ends sending a shared screen to everyone (new members get it when they connect). */
  async setScreen(screen: MediaStream | null): Promise<void> {
    await Promise.all([...this.remotes.values()].map((r) => r.link?.setScreen(screen)))
  }

  /**
   * Applies the always-relay setting to the running call at once (new links read relayOnly()).
   * To relay: every link is replaced by a new one (Chromium keeps a direct path it has through an
   * ICE restart, so only a new connection hides this device's address); the first offer is marked
   * `fresh` so the other side replaces its end too. Back to direct: an ICE restart is enough.
   */
  setRelayOnly(relay: boolean): void {
    for (const r of [...this.remotes.values()]) {
      if (!r.link) continue
      if (!relay) {
        r.link.setRelayOnly(false)
        continue
      }
      this.dropLink(r)
      this.connect(r.id, true).start()
      this.emit('remote', r.id)
    }
  }

  /** Starts one transfer per target; returns [peerId, meta] for each (empty: nobody to send to). */
  sendFile(file: File, to: string | null): { peerId: string; meta: FileMeta }[] {
    const out: { peerId: string; meta: FileMeta }[] = []
    for (const r of this.remotes.values()) {
      if ((to && r.id !== to) || !r.files) continue
      const meta: FileMeta = { id: newId(), name: file.name, size: file.size, mime: file.type }
      void r.files.send(file, meta)
      out.push({ peerId: r.id, meta })
    }
    return out
  }

  cancelFile(peerId: string, id: string): void {
    this.remotes.get(peerId)?.files?.cancel(id)
  }

  async replaceTrack(kind: 'audio' | 'video', track: MediaStreamTrack | null): Promise<void> {
    await Promise.all([...this.remotes.values()].map((r) => r.link?.replaceTrack(kind, track)))
  }

  restartIce(): void {
    for (const r of this.remotes.values()) r.link?.restartIce()
  }

  /** Closes every link (after a logout). */
  reset(): void {
    for (const id of [...this.remotes.keys()]) this.removeMember(id, false)
    this.history.reset()
    this.emit('members', undefined)
  }

  /** Reads every link's statistics (getStats), for the quality indicator and the stats panel. */
  async readStats(): Promise<void> {
    await Promise.all([...this.remotes.values()].map(async (r) => {
      const pc = r.link?.pc
      if (!pc || typeof pc.getStats !== 'function' || pc.connectionState === 'closed') return
      try {
        const report = await pc.getStats()
        r.stats = summarize([...report.values()] as StatEntry[], r.stats, performance.now())
        r.quality = qualityOf(r.stats)
        this.emit('remote', r.id)
      } catch {
        /* closed meanwhile */
      }
    }))
  }

  /** Closes every link and stops listening to the signalling client. */
  dispose(): void {
    if (this.statsTimer) clearInterval(this.statsTimer)
    for (const id of [...this.remotes.keys()]) this.removeMember(id, false)
    this.history.reset()
    for (const off of this.offs) off()
    this.clear()
  }
}
