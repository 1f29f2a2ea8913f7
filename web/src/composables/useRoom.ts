// useRoom: reactive view of the signalling connection and the mesh of peers, shared by the whole app.
import { computed, markRaw, ref, shallowRef } from 'vue'
import { SignalClient, type SignalState } from '../signal/client'
import { signalUrl } from '../signal/messages'
import { Mesh } from '../rtc/mesh'
import { useMedia } from './useMedia'
import { useSettings } from './useSettings'

export interface RemoteView {
  id: string
  name: string
  stream: MediaStream | null
  mic: boolean
  cam: boolean
  sharing: boolean
  connection: RTCPeerConnectionState
}

export type RoomError = { kind: 'full' | 'server'; type: string; text: string } | null

const signalState = ref<SignalState>('idle')
const attempt = ref(0)
const room = ref('')
const selfId = ref('')
const joined = ref(false)
const inRoom = ref(false)
const remotes = shallowRef<RemoteView[]>([])
const error = shallowRef<RoomError>(null)
let client: SignalClient | null = null
let mesh: Mesh | null = null

function refresh(): void {
  if (!mesh) return
  remotes.value = [...mesh.remotes.values()].map((r) => ({
    id: r.id,
    name: r.name,
    stream: r.stream ? markRaw(r.stream) : null,
    mic: r.mic,
    cam: r.cam,
    sharing: r.sharing,
    connection: r.connection,
  }))
}

function ensureClient(): { client: SignalClient; mesh: Mesh } {
  if (client && mesh) return { client, mesh }
  const media = useMedia()
  const settings = useSettings()
  const c = new SignalClient({ url: signalUrl(location) })
  client = c
  c.on('state', (s) => {
    signalState.value = s.state
    attempt.value = s.attempt
    if (s.state !== 'open') joined.value = false
  })
  let errorTimer: ReturnType<typeof setTimeout> | null = null
  c.on('error', (e) => {
    const err: RoomError = { kind: e.errorType === 'full' ? 'full' : 'server', type: e.errorType, text: e.errorText }
    error.value = err
    if (errorTimer) clearTimeout(errorTimer)
    // A refused login stays until dismissed; anything else (a dropped relay) fades after a while.
    if (e.errorType !== 'full' && e.errorType !== 'server-full') {
      errorTimer = setTimeout(() => {
        if (error.value === err) error.value = null
      }, 8000)
    }
    if (e.errorType === 'full' || e.errorType === 'server-full') {
      c.forgetRoom()
      inRoom.value = false
    }
  })
  const m = new Mesh(c, {
    getStream: () => media.stream.value,
    relayOnly: () => settings.relay.value,
    getState: () => ({ mic: media.micOn.value, cam: media.camOn.value, sharing: media.sharing.value }),
  })
  mesh = m
  m.on('joined', (info) => {
    joined.value = true
    selfId.value = info.sessionId
    error.value = null
  })
  m.on('members', refresh)
  m.on('remote', refresh)
  media.hooks({
    videoTrack: (t) => void m.replaceVideoTrack(t).catch((e) => console.warn('peerbox: replaceTrack', e)),
    state: () => m.broadcastState(),
  })
  window.addEventListener('online', () => {
    m.restartIce()
    c.reconnectNow()
  })
  c.connect()
  return { client: c, mesh: m }
}

function join(roomId: string, username: string): void {
  const { client: c } = ensureClient()
  room.value = roomId
  inRoom.value = true
  error.value = null
  c.login(roomId, username.trim().slice(0, 64) || 'guest')
}

function leave(): void {
  if (!client || !mesh) return
  client.logout()
  mesh.reset()
  inRoom.value = false
  joined.value = false
  remotes.value = []
}

/** A fresh UUID v4 that the server says is not in use. */
async function randomRoom(): Promise<string> {
  return ensureClient().client.randomRoom(() => crypto.randomUUID())
}

export function useRoom() {
  return {
    signalState, attempt, room, selfId, joined, inRoom, remotes, error,
    memberCount: computed(() => remotes.value.length + 1),
    join, leave, randomRoom,
    connect: () => void ensureClient(),
    mesh: () => ensureClient().mesh,
    clearError: () => (error.value = null),
  }
}
