// useRoom: reactive view of the signalling connection and the mesh of peers, shared by the whole app.
// A person is "in the room" from the server's `joined` on, never before: joining while the server is
// unreachable stays on the entry screen and says so, instead of showing an empty call. The room's
// host and what it set (lock, password, lobby, history) come from the server; so do the host's
// requests (mute, end), which this client obeys and says so.
import { computed, effectScope, markRaw, ref, shallowRef, watch } from 'vue'
import { SignalClient, type SignalState } from '../signal/client'
import { signalUrl, type HostAction, type Member, type RoomChange, type RoomState } from '../signal/messages'
import { Mesh, type Trust } from '../rtc/mesh'
import { FrameCrypto, type FrameCounts } from '../rtc/frameCrypto'
import { SfuSwitch } from '../rtc/sfuSwitch'
import { RoomTrust } from '../rtc/trust'
import type { Reaction } from '../rtc/reactions'
import type { LinkStats, Quality } from '../rtc/stats'
import { useMedia } from './useMedia'
import { useRecording } from './useRecording'
import { useSettings } from './useSettings'
import { useToasts } from './useToasts'

export interface RemoteView {
  id: string
  name: string
  /** Camera and mic. */
  stream: MediaStream | null
  /** The shared screen, while the member shares one. */
  screen: MediaStream | null
  mic: boolean
  cam: boolean
  sharing: boolean
  hand: boolean
  /** Says it records the call. */
  recording: boolean
  connection: RTCPeerConnectionState
  stats: LinkStats | null
  quality: Quality
  trust: Trust
  code: string
  /** Its media comes through the server's SFU (the link carries data only). */
  sfu: boolean
  /** Shown from the SFU while our SFU connection is made again (the tile says so). */
  sfuReconnecting: boolean
}

/** A reaction shown for a few seconds on its sender's tile (`id`: a member, or 'self'). */
export interface ShownReaction {
  key: number
  id: string
  name: string
  emoji: Reaction
}

/** How long a reaction stays on its tile. */
export const REACTION_SHOW_MS = 4000

export type RoomError = { kind: 'full' | 'server'; type: string; text: string } | null

const signalState = ref<SignalState>('idle')
const attempt = ref(0)
/** The server refused the connection (too-many-connections); when the next try is due. */
const refused = ref(false)
const retryAt = ref(0)
const room = ref('')
const selfId = ref('')
const joined = ref(false)
const inRoom = ref(false)
/** Join clicked, `joined` not yet received. */
const joining = ref(false)
const remotes = shallowRef<RemoteView[]>([])
const error = shallowRef<RoomError>(null)
/** My own raised hand. */
const hand = ref(false)
/** The room's host and settings; null on a server without host powers. */
const roomState = shallowRef<RoomState | null>(null)
/** Who waits in the lobby (told to the host only), and since when on this clock (ms). */
const waiting = shallowRef<(Member & { since: number })[]>([])
/** Waiting in the room's lobby for the host to let us in. */
const knocking = ref(false)
/** When the knock expires on this clock (ms); 0 when the server did not say. */
const knockUntil = ref(0)
/** The room secret from the link's fragment ('' = none: links are unverified). */
const secret = ref('')
/** Whether the room's media goes through the server's SFU (a big room), and how. */
const sfuMode = ref(false)
/** The SFU media is end-to-end encrypted with the room key (frame encryption). */
const sfuEncrypted = ref(false)
/** Frames encrypted, decrypted and dropped (not decrypting) so far. */
const sfuFrames = shallowRef<FrameCounts>({ encrypted: 0, decrypted: 0, dropped: 0 })
/** Who speaks now by the server's audio levels, loudest first; null: the server does not say (local detection). */
const speakers = shallowRef<string[] | null>(null)
/** Tiles (member id, `id:screen`) whose video the SFU pauses because our bandwidth cannot carry it. */
const sfuPaused = shallowRef<ReadonlySet<string>>(new Set())
/** Reactions being shown, oldest first. */
const reactions = shallowRef<ShownReaction[]>([])
let reactionKey = 0

function showReaction(id: string, name: string, emoji: Reaction): void {
  const shown: ShownReaction = { key: ++reactionKey, id, name, emoji }
  reactions.value = [...reactions.value, shown].slice(-12)
  setTimeout(() => (reactions.value = reactions.value.filter((x) => x !== shown)), REACTION_SHOW_MS)
}
let client: SignalClient | null = null
let mesh: Mesh | null = null
let sfu: SfuSwitch | null = null

function refresh(): void {
  if (!mesh) return
  remotes.value = [...mesh.remotes.values()].map((r) => ({
    id: r.id,
    name: r.name,
    stream: r.stream ? markRaw(r.stream) : null,
    screen: r.screen ? markRaw(r.screen) : null,
    mic: r.mic,
    cam: r.cam,
    sharing: r.sharing,
    hand: r.hand,
    recording: r.recording,
    connection: r.connection,
    stats: r.stats,
    quality: r.quality,
    trust: r.trust,
    code: r.code,
    sfu: r.sfu,
    sfuReconnecting: r.sfuReconnecting,
  }))
}

/** Errors after which the person is not in the room (any more), or not let in. */
const REFUSED_LOGIN = new Set([
  'full', 'server-full', 'locked', 'password-required', 'wrong-password', 'removed', 'declined',
  'lobby-full', 'lobby-timeout', 'lobby-closed', 'room-name-too-short', 'unavailable',
])

function ensureClient(): { client: SignalClient; mesh: Mesh } {
  if (client && mesh) return { client, mesh }
  const media = useMedia()
  const settings = useSettings()
  const c = new SignalClient({ url: signalUrl(location) })
  client = c
  c.on('state', (s) => {
    signalState.value = s.state
    attempt.value = s.attempt
    if (s.state === 'reconnecting') {
      refused.value = s.refused === true
      retryAt.value = Date.now() + (s.retryInMs ?? 0)
    } else if (s.state === 'open' && !s.refused) {
      refused.value = false
    }
    if (s.state !== 'open') joined.value = false
  })
  let errorTimer: ReturnType<typeof setTimeout> | null = null
  c.on('error', (e) => {
    // Said by the reconnect notice (with the wait), not as a passing error.
    if (e.errorType === 'too-many-connections') return
    // The SFU's refusals: the media stays on the mesh links (SfuSwitch), nothing to tell.
    if (e.errorType.startsWith('sfu-') || e.errorType === 'not-sfu') return
    const err: RoomError = { kind: e.errorType === 'full' ? 'full' : 'server', type: e.errorType, text: e.errorText }
    error.value = err
    if (errorTimer) clearTimeout(errorTimer)
    // A refused login stays until dismissed; anything else (a dropped relay) fades after a while.
    if (!REFUSED_LOGIN.has(e.errorType)) {
      errorTimer = setTimeout(() => {
        if (error.value === err) error.value = null
      }, 8000)
    } else {
      c.forgetRoom()
      // Removed from a call under way: its links end here too.
      if (inRoom.value) teardown()
      joining.value = false
      knocking.value = false
      inRoom.value = false
    }
  })
  c.on('roomState', (m) => (roomState.value = m.state))
  c.on('knocking', (m) => {
    knocking.value = true
    knockUntil.value = m.waitSecs === undefined ? 0 : Date.now() + m.waitSecs * 1000
  })
  c.on('lobby', (m) => {
    const before = new Set(waiting.value.map((k) => k.sessionId))
    const now = Date.now()
    waiting.value = m.waiting.map((k) => ({ sessionId: k.sessionId, username: k.username, since: now - (k.waitedSecs ?? 0) * 1000 }))
    for (const k of m.waiting) {
      if (!before.has(k.sessionId)) useToasts().push('host', 'host.knocks', { name: k.username }, { ms: 8000 })
    }
  })
  c.on('askMute', (m) => {
    // A request, not a command the server can enforce: this client obeys and says so.
    if (m.kind === 'audio' && media.micOn.value) media.toggleMic()
    if (m.kind === 'video' && media.camOn.value) media.toggleCam()
    useToasts().push('host', m.kind === 'audio' ? 'host.askedMute' : 'host.askedVideo', {}, { ms: 10000 })
  })
  c.on('ended', () => {
    c.forgetRoom()
    teardown()
    error.value = { kind: 'server', type: 'ended', text: '' }
  })
  const m = new Mesh(c, {
    getStream: () => media.stream.value,
    getScreen: () => media.screen.value,
    relayOnly: () => settings.relay.value,
    getState: () => ({ ...media.state(), hand: hand.value, recording: useRecording().recording.value, sfu: sw.shownList() }),
    sfuMedia: (id) => sw.mediaOf(id),
    linkMedia: () => sw.linkMedia(),
  })
  mesh = m
  const sw: SfuSwitch = new SfuSwitch(c, m, {
    getStream: () => media.stream.value,
    getScreen: () => media.screen.value,
    getCrypto: () => FrameCrypto.of(secret.value, room.value),
  })
  sfu = sw
  sw.on('changed', () => {
    sfuMode.value = sw.mode === 'sfu'
    sfuEncrypted.value = sw.encrypted
    sfuFrames.value = sw.counts
    if (sw.mode !== 'sfu') speakers.value = null
    if (sw.mode !== 'sfu') sfuPaused.value = new Set()
  })
  sw.on('speakers', (list) => (speakers.value = sw.mode === 'sfu' ? list : null))
  sw.on('paused', (list) => (sfuPaused.value = new Set(sw.mode === 'sfu' ? list : [])))
  m.on('joined', (info) => {
    if (!joining.value && !inRoom.value) {
      // The person cancelled while the login was on its way.
      c.logout()
      return
    }
    joined.value = true
    joining.value = false
    knocking.value = false
    inRoom.value = true
    selfId.value = info.sessionId
    roomState.value = info.state ?? null
    if (info.state?.host !== info.sessionId) waiting.value = []
    error.value = null
  })
  m.on('refused', ({ name }) => useToasts().push('trust', 'trust.refusedToast', { name }, { ms: 15000 }))
  m.on('reaction', ({ id, name, emoji }) => showReaction(id, name, emoji))
  m.on('members', refresh)
  m.on('remote', refresh)
  media.hooks({
    track: (kind, t) => {
      void m.replaceTrack(kind, t).catch((e) => console.warn('peerbox: replaceTrack', e))
      void sw.replaceTrack(kind).catch((e) => console.warn('peerbox: sfu replaceTrack', e))
    },
    screen: (s) => {
      void m.setScreen(s).catch((e) => console.warn('peerbox: screen', e))
      void sw.setScreen(!!s).catch((e) => console.warn('peerbox: sfu screen', e))
    },
    state: () => m.broadcastState(),
  })
  // Ticking "always relay" mid-call moves every connection at once (new policy + ICE restart).
  // A detached scope: the first caller is a component (the entry screen), and a watcher made in
  // its hooks would stop when it unmounts, i.e. exactly when the call starts.
  effectScope(true).run(() => {
    watch(settings.relay, (relay) => m.setRelayOnly(relay))
    // Starting or stopping a recording is told to everyone at once (latecomers get it on connect).
    watch(useRecording().recording, () => m.broadcastState())
  })
  window.addEventListener('online', () => {
    m.restartIce()
    c.reconnectNow()
  })
  c.connect()
  return { client: c, mesh: m }
}

/** `key`: the room secret of the link's fragment, if it has one (see rtc/trust.ts). */
function join(roomId: string, username: string, password?: string, key = ''): void {
  const { client: c, mesh: m } = ensureClient()
  room.value = roomId
  secret.value = key
  joining.value = true
  error.value = null
  const login = () => c.login(roomId, username.trim().slice(0, 64) || 'guest', password)
  if (!key) {
    m.setTrust(null)
    login()
    return
  }
  void RoomTrust.of(key, roomId).then((trust) => {
    m.setTrust(trust)
    if (joining.value) login()
  })
}

/** Gives up a join that the server has not answered yet (or a knock at the lobby). */
function cancelJoin(): void {
  if (!joining.value) return
  joining.value = false
  if (knocking.value) client?.logout()
  knocking.value = false
  client?.forgetRoom()
}

/** Ends the call on this side: links, state, camera. */
function teardown(): void {
  // A recording under way ends with the call, and its file is saved.
  void useRecording().stop()
  sfu?.reset()
  mesh?.reset()
  inRoom.value = false
  joining.value = false
  joined.value = false
  knocking.value = false
  hand.value = false
  remotes.value = []
  reactions.value = []
  roomState.value = null
  waiting.value = []
  // The camera light goes off with the call; the entry screen restarts the preview only on request.
  useMedia().stop()
}

function leave(): void {
  if (!client || !mesh) return
  client.logout()
  teardown()
}

/** A fresh UUID v4 that the server says is not in use. */
async function randomRoom(): Promise<string> {
  return ensureClient().client.randomRoom(() => crypto.randomUUID())
}

const isHost = computed(() => !!roomState.value && roomState.value.host === selfId.value)

/** The host's powers; the server refuses them from anyone else. */
const host = {
  set: (change: RoomChange) => client?.setRoom(change),
  act: (action: HostAction, to: string) => client?.hostAction(action, to),
  askMute: (to: string, kind: 'audio' | 'video') => client?.askMute(to, kind),
  endCall: () => client?.endCall(),
}

export function useRoom() {
  return {
    signalState, attempt, refused, retryAt, room, selfId, joined, inRoom, joining, remotes, error, hand,
    roomState, waiting, knocking, knockUntil, isHost, host, secret, reactions, sfuMode, sfuEncrypted, sfuFrames, speakers, sfuPaused,
    /** A tile shows a member's camera or screen at this size in device pixels (0x0: not shown), for the SFU's layer choice. */
    setView: (id: string, source: 'camera' | 'screen', width: number, height: number) => sfu?.setView(id, source, width, height),
    /** Sends a quick reaction and shows it on the own tile; false when over the rate limit. */
    sendReaction: (emoji: Reaction, name: string): boolean => {
      if (!mesh?.sendReaction(emoji)) return false
      showReaction('self', name, emoji)
      return true
    },
    toggleHand: () => {
      hand.value = !hand.value
      mesh?.broadcastState()
    },
    memberCount: computed(() => remotes.value.length + 1),
    join, cancelJoin, leave, randomRoom,
    connect: () => void ensureClient(),
    mesh: () => ensureClient().mesh,
    client: () => ensureClient().client,
    clearError: () => (error.value = null),
  }
}
