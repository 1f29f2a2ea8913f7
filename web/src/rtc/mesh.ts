// Mesh: wires the signalling client to one PeerLink (+ chat and file links) per remote member.
import { Emitter } from '../signal/emitter'
import type { SignalClient } from '../signal/client'
import type { JoinedInfo } from '../signal/messages'
import { ChatLink, type ChannelLike, type ChatMessage, type StateMessage } from './chat'
import { FileLink, type FileChannelLike, type FileMeta } from './files'
import { PeerLink } from './peerLink'

export interface Remote {
  id: string
  name: string
  link: PeerLink | null
  chat: ChatLink | null
  files: FileLink | null
  stream: MediaStream | null
  mic: boolean
  cam: boolean
  sharing: boolean
  connection: RTCPeerConnectionState
}

export type MeshEvents = {
  /** Members were added or removed. */
  members: void
  /** Something about one member changed (stream, state badges, connection). */
  remote: string
  chat: ChatMessage
  joined: JoinedInfo
  fileIncoming: { peerId: string; meta: FileMeta }
  fileProgress: { peerId: string; id: string; bytes: number }
  fileComplete: { peerId: string; id: string; blob: Blob; sha256: string }
  fileFailed: { peerId: string; id: string; reason: string }
}

export interface MeshOptions {
  getStream: () => MediaStream | null
  relayOnly: () => boolean
  getState: () => { mic: boolean; cam: boolean; sharing?: boolean }
  /** Tests pass a fake; browsers use RTCPeerConnection. */
  createPeerConnection?: (config: RTCConfiguration) => RTCPeerConnection
}

const newId = () => crypto.randomUUID()

export class Mesh extends Emitter<MeshEvents> {
  readonly remotes = new Map<string, Remote>()
  selfId = ''
  private iceServers: RTCIceServer[] = []
  private outbox = new Map<string, ChatMessage[]>()
  private offs: (() => void)[] = []

  constructor(private readonly signal: SignalClient, private readonly opts: MeshOptions) {
    super()
    this.offs = [
      signal.on('joined', (info) => this.onJoined(info)),
      signal.on('login', (m) => {
        this.addMember(m.from, m.username)
        this.connect(m.from).start()
      }),
      signal.on('offer', (m) => {
        if (!this.remotes.has(m.from)) this.addMember(m.from, m.username ?? '')
        void this.connect(m.from).handleDescription(m.description).catch((e) => console.warn('peerbox: offer', e))
      }),
      signal.on('answer', (m) => {
        void this.remotes.get(m.from)?.link?.handleDescription(m.description).catch((e) => console.warn('peerbox: answer', e))
      }),
      signal.on('candidate', (m) => void this.remotes.get(m.from)?.link?.handleCandidate(m.candidate)),
      signal.on('logout', (m) => this.removeMember(m.from)),
    ]
  }

  private onJoined(info: JoinedInfo): void {
    // A (re)join gives us a new session id: the others renegotiate with it, so old links are dead.
    for (const id of [...this.remotes.keys()]) this.removeMember(id, false)
    this.selfId = info.sessionId
    this.iceServers = info.iceServers
    for (const m of info.members) this.addMember(m.sessionId, m.username, false)
    this.emit('members', undefined)
    this.emit('joined', info)
  }

  private addMember(id: string, name: string, notify = true): void {
    const existing = this.remotes.get(id)
    if (existing) {
      if (name) existing.name = name
      return
    }
    this.remotes.set(id, {
      id, name, link: null, chat: null, files: null, stream: null, mic: true, cam: true, sharing: false, connection: 'new',
    })
    if (notify) this.emit('members', undefined)
  }

  /** Returns the member's PeerLink, creating it (with its chat and file links) when missing. */
  private connect(id: string): PeerLink {
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
      },
      stream: this.opts.getStream(),
      createPeerConnection: this.opts.createPeerConnection,
      signals: {
        offer: (d) => this.signal.sendOffer(id, d),
        answer: (d) => this.signal.sendAnswer(id, d),
        candidate: (c) => this.signal.sendCandidate(id, c),
      },
      onTrack: (stream) => {
        r.stream = stream
        this.emit('remote', id)
      },
      onConnectionState: (state) => {
        r.connection = state
        this.emit('remote', id)
      },
    })
    r.link = link
    r.chat = new ChatLink(link.chatChannel as unknown as ChannelLike, {
      onChat: (msg) => this.emit('chat', { ...msg, from: id, fromName: r.name || msg.fromName }),
      onState: (s: StateMessage) => {
        r.mic = s.mic
        r.cam = s.cam
        r.sharing = s.sharing === true
        this.emit('remote', id)
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

  private removeMember(id: string, notify = true): void {
    const r = this.remotes.get(id)
    if (!r) return
    r.chat?.close()
    r.link?.close()
    this.remotes.delete(id)
    this.outbox.delete(id)
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

  private stateMessage(): StateMessage {
    return { kind: 'state', id: newId(), ts: Date.now(), ...this.opts.getState() }
  }

  broadcastState(): void {
    const msg = this.stateMessage()
    for (const r of this.remotes.values()) r.chat?.send({ ...msg, id: newId() })
  }

  /** Starts one transfer per target; returns [peerId, meta] for each. */
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

  async replaceVideoTrack(track: MediaStreamTrack | null): Promise<void> {
    await Promise.all([...this.remotes.values()].map((r) => r.link?.replaceVideoTrack(track)))
  }

  restartIce(): void {
    for (const r of this.remotes.values()) r.link?.restartIce()
  }

  /** Closes every link (after a logout). */
  reset(): void {
    for (const id of [...this.remotes.keys()]) this.removeMember(id, false)
    this.emit('members', undefined)
  }

  /** Closes every link and stops listening to the signalling client. */
  dispose(): void {
    for (const id of [...this.remotes.keys()]) this.removeMember(id, false)
    for (const off of this.offs) off()
    this.clear()
  }
}
