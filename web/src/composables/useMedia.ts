// Local media: camera and mic (the chosen devices, with the chosen audio processing), mute, camera
// off, switching cameras, screen sharing (a stream of its own next to the camera, with the
// screen's audio where the browser offers it). Mute and camera-off chosen before joining carry
// into the call.
import { markRaw, ref, shallowRef } from 'vue'
import { useSettings, type AudioProcessing } from './useSettings'

export type MediaProblem = 'denied' | 'missing' | 'in-use' | 'insecure' | 'other' | null
type Kind = 'audio' | 'video'

const stream = shallowRef<MediaStream | null>(null)
/** The shared screen (video, and audio when the browser gives it) while sharing. */
const screen = shallowRef<MediaStream | null>(null)
/** The camera and mic were switched off by leaving a call: they start again only when asked. */
const stopped = ref(false)
const micOn = ref(true)
const camOn = ref(true)
const sharing = ref(false)
const problem = ref<MediaProblem>(null)
const receiveOnly = ref(false)
const facing = ref<'user' | 'environment'>('user')
const canSwitch = ref(false)
const canShare = typeof navigator !== 'undefined' && !!navigator.mediaDevices?.getDisplayMedia
/** The devices to use ('' = the browser's default). */
const chosen = ref<Record<Kind, string>>({ audio: '', video: '' })
/** Called with a new outgoing camera or mic track (device switch): the room swaps it into every sender. */
let onTrack: (kind: Kind, track: MediaStreamTrack) => void = () => {}
/** Called when a screen share starts (its stream) or ends (null). */
let onScreen: (screen: MediaStream | null) => void = () => {}
let onStateChange: () => void = () => {}

function classify(e: unknown): MediaProblem {
  const name = e instanceof DOMException || e instanceof Error ? e.name : ''
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'denied'
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'missing'
  if (name === 'NotReadableError' || name === 'AbortError') return 'in-use'
  return 'other'
}

function constraints(kind: Kind): MediaTrackConstraints {
  const id = chosen.value[kind]
  if (kind === 'video') return id ? { deviceId: { exact: id } } : { facingMode: facing.value }
  const p: AudioProcessing = useSettings().audio.value
  return { ...(id ? { deviceId: { exact: id } } : {}), echoCancellation: p.echoCancellation, noiseSuppression: p.noiseSuppression, autoGainControl: p.autoGainControl }
}

const track = (kind: Kind) => (kind === 'audio' ? stream.value?.getAudioTracks()[0] : stream.value?.getVideoTracks()[0]) ?? null

let starting: Promise<void> | null = null

/** Starts the camera and mic once; later calls wait for the same attempt. */
function start(): Promise<void> {
  starting ??= startNow().finally(() => (starting = null))
  return starting
}

async function startNow(): Promise<void> {
  if (stream.value) return
  stopped.value = false
  if (!navigator.mediaDevices?.getUserMedia) {
    problem.value = window.isSecureContext ? 'missing' : 'insecure'
    return
  }
  problem.value = null
  let s: MediaStream | null = null
  try {
    s = await navigator.mediaDevices.getUserMedia({ audio: constraints('audio'), video: constraints('video') })
  } catch (e) {
    problem.value = classify(e)
    // A missing or busy camera should not cost us the microphone (and vice versa).
    for (const c of [{ audio: constraints('audio') }, { video: constraints('video') }]) {
      try {
        s = await navigator.mediaDevices.getUserMedia(c)
        break
      } catch {
        /* try the next */
      }
    }
  }
  if (!s) return
  stream.value = markRaw(s)
  // What was chosen before (join muted, join without camera) stays chosen.
  for (const t of s.getAudioTracks()) t.enabled = micOn.value
  for (const t of s.getVideoTracks()) t.enabled = camOn.value
  await refreshDevices()
}

/** The camera, mic and speaker lists (names only once access was granted). */
const devices = shallowRef<MediaDeviceInfo[]>([])

async function refreshDevices(): Promise<void> {
  try {
    devices.value = await navigator.mediaDevices.enumerateDevices()
  } catch {
    devices.value = []
  }
  canSwitch.value = devices.value.filter((d) => d.kind === 'videoinput').length > 1
}

/** Stops camera, mic and any screen share (the camera light goes off). */
function stop(): void {
  for (const t of stream.value?.getTracks() ?? []) t.stop()
  stopShare()
  stream.value = null
  stopped.value = true
}

/** What the others should show: a switched-off or missing track counts as off. */
function state(): { mic: boolean; cam: boolean; sharing: boolean; screen?: string } {
  const live = (t: MediaStreamTrack | null) => t?.readyState === 'live'
  return {
    mic: micOn.value && live(track('audio')),
    cam: camOn.value && live(track('video')),
    sharing: sharing.value,
    screen: screen.value?.id,
  }
}

/** Mute and camera off work before joining too (they carry into the call). */
function toggleMic(): void {
  micOn.value = !micOn.value
  for (const t of stream.value?.getAudioTracks() ?? []) t.enabled = micOn.value
  onStateChange()
}

function toggleCam(): void {
  camOn.value = !camOn.value
  for (const t of stream.value?.getVideoTracks() ?? []) t.enabled = camOn.value
  onStateChange()
}

/** Opens the chosen device (or the same one with new audio processing) and swaps it in. */
async function reopen(kind: Kind): Promise<void> {
  const old = track(kind)
  const s = stream.value
  if (!s || !old) return
  // Phones often cannot open two cameras at once: release the old one first.
  if (kind === 'video') old.stop()
  try {
    const got = await navigator.mediaDevices.getUserMedia({ [kind]: constraints(kind) })
    const next = (kind === 'audio' ? got.getAudioTracks() : got.getVideoTracks())[0]
    if (!next) return
    next.enabled = kind === 'audio' ? micOn.value : camOn.value
    old.stop()
    s.removeTrack(old)
    s.addTrack(next)
    // A new MediaStream object makes the previews pick the new track up.
    stream.value = markRaw(new MediaStream(s.getTracks()))
    onTrack(kind, next)
  } catch (e) {
    problem.value = classify(e)
  }
}

/** Uses the given camera or microphone from now on (in the preview and in the call). */
async function useDevice(kind: Kind, deviceId: string): Promise<void> {
  chosen.value = { ...chosen.value, [kind]: deviceId }
  await reopen(kind)
}

/** Next camera: cycle through the video inputs by device id; fall back to flipping facingMode. */
async function switchCamera(): Promise<void> {
  await refreshDevices()
  const cams = devices.value.filter((d) => d.kind === 'videoinput' && d.deviceId)
  const current = track('video')?.getSettings().deviceId
  if (cams.length > 1) {
    const i = cams.findIndex((d) => d.deviceId === current)
    return useDevice('video', cams[(i + 1) % cams.length]!.deviceId)
  }
  facing.value = facing.value === 'user' ? 'environment' : 'user'
  chosen.value = { ...chosen.value, video: '' }
  return reopen('video')
}

async function toggleShare(): Promise<void> {
  if (sharing.value) return stopShare()
  try {
    // audio: true asks for the tab's (or, where allowed, the system's) sound; browsers that
    // cannot capture it simply return video only. systemAudio is Chromium's hint, not yet in TS's types.
    const options = { video: true, audio: true, systemAudio: 'include' } as DisplayMediaStreamOptions
    const s = markRaw(await navigator.mediaDevices.getDisplayMedia(options))
    const video = s.getVideoTracks()[0]
    if (!video) return
    // The browser's own "Stop sharing" ends the track.
    video.onended = () => stopShare()
    screen.value = s
    sharing.value = true
    onScreen(s)
    onStateChange()
  } catch {
    /* the person cancelled the picker */
  }
}

function stopShare(): void {
  if (!sharing.value) return
  sharing.value = false
  for (const t of screen.value?.getTracks() ?? []) t.stop()
  screen.value = null
  onScreen(null)
  onStateChange()
}

/** Joining anyway after a problem: keep whatever did start, otherwise join receive-only. */
function acceptProblem(): void {
  if (!problem.value) return
  problem.value = null
  if (!stream.value) receiveOnly.value = true
}

function joinWithoutMedia(): void {
  stop()
  stopped.value = false
  receiveOnly.value = true
  problem.value = null
}

export function useMedia() {
  return {
    stream, screen, micOn, camOn, sharing, problem, receiveOnly, stopped, canSwitch, canShare, devices, chosen,
    start, stop, state, whenReady: () => starting ?? Promise.resolve(),
    toggleMic, toggleCam, switchCamera, useDevice, reopenMic: () => reopen('audio'), refreshDevices,
    toggleShare, joinWithoutMedia, acceptProblem,
    hooks(h: { track: (kind: Kind, t: MediaStreamTrack) => void; screen: (s: MediaStream | null) => void; state: () => void }) {
      onTrack = h.track
      onScreen = h.screen
      onStateChange = h.state
    },
  }
}
