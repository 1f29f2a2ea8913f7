// Local media: camera and mic, mute, camera off, switching cameras, screen sharing (a stream of its
// own next to the camera, with the screen's audio where the browser offers it).
import { markRaw, ref, shallowRef } from 'vue'

export type MediaProblem = 'denied' | 'missing' | 'in-use' | 'insecure' | 'other' | null

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
let cameraTrack: MediaStreamTrack | null = null
/** Called with the new outgoing camera track (after a switch): the room swaps it into every sender. */
let onVideoTrack: (track: MediaStreamTrack | null) => void = () => {}
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
    s = await navigator.mediaDevices.getUserMedia({ audio: true, video: { facingMode: facing.value } })
  } catch (e) {
    problem.value = classify(e)
    // A missing or busy camera should not cost us the microphone (and vice versa).
    for (const constraints of [{ audio: true }, { video: true }]) {
      try {
        s = await navigator.mediaDevices.getUserMedia(constraints)
        break
      } catch {
        /* try the next */
      }
    }
  }
  if (!s) return
  stream.value = markRaw(s)
  cameraTrack = s.getVideoTracks()[0] ?? null
  camOn.value = !!cameraTrack
  micOn.value = s.getAudioTracks().length > 0
  try {
    const devices = await navigator.mediaDevices.enumerateDevices()
    canSwitch.value = devices.filter((d) => d.kind === 'videoinput').length > 1
  } catch {
    canSwitch.value = false
  }
}

/** Stops camera, mic and any screen share (the camera light goes off). */
function stop(): void {
  for (const t of stream.value?.getTracks() ?? []) t.stop()
  stopShare()
  stream.value = null
  cameraTrack = null
  stopped.value = true
}

/** What the others should show: a switched-off or missing track counts as off. */
function state(): { mic: boolean; cam: boolean; sharing: boolean; screen?: string } {
  const live = (ts: MediaStreamTrack[] | undefined) => !!ts?.some((t) => t.readyState === 'live')
  return {
    mic: micOn.value && live(stream.value?.getAudioTracks()),
    cam: camOn.value && live(stream.value?.getVideoTracks()),
    sharing: sharing.value,
    screen: screen.value?.id,
  }
}

function toggleMic(): void {
  const tracks = stream.value?.getAudioTracks() ?? []
  if (!tracks.length) return
  micOn.value = !micOn.value
  for (const t of tracks) t.enabled = micOn.value
  onStateChange()
}

function toggleCam(): void {
  if (!cameraTrack) return
  camOn.value = !camOn.value
  cameraTrack.enabled = camOn.value
  onStateChange()
}

/** Swaps the camera track in the local stream for `next` and tells the room. */
function swapVideo(next: MediaStreamTrack): void {
  const s = stream.value
  if (!s) return
  for (const t of s.getVideoTracks()) s.removeTrack(t)
  s.addTrack(next)
  onVideoTrack(next)
}

/** Next camera: cycle through the video inputs by device id; fall back to flipping facingMode. */
async function nextCameraConstraints(): Promise<MediaTrackConstraints> {
  const cams = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput' && d.deviceId)
  const current = cameraTrack?.getSettings().deviceId
  if (cams.length > 1) {
    const i = cams.findIndex((d) => d.deviceId === current)
    return { deviceId: { exact: cams[(i + 1) % cams.length]!.deviceId } }
  }
  facing.value = facing.value === 'user' ? 'environment' : 'user'
  return { facingMode: { ideal: facing.value } }
}

async function switchCamera(): Promise<void> {
  if (!cameraTrack) return
  try {
    const constraints = await nextCameraConstraints()
    // Phones often cannot open two cameras at once: release the old one first.
    cameraTrack.stop()
    const s = await navigator.mediaDevices.getUserMedia({ video: constraints })
    const next = s.getVideoTracks()[0]!
    next.enabled = camOn.value
    cameraTrack = next
    swapVideo(next)
  } catch (e) {
    problem.value = classify(e)
  }
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
    stream, screen, micOn, camOn, sharing, problem, receiveOnly, stopped, canSwitch, canShare,
    start, stop, state, whenReady: () => starting ?? Promise.resolve(),
    toggleMic, toggleCam, switchCamera, toggleShare, joinWithoutMedia, acceptProblem,
    hooks(h: { videoTrack: (t: MediaStreamTrack | null) => void; screen: (s: MediaStream | null) => void; state: () => void }) {
      onVideoTrack = h.videoTrack
      onScreen = h.screen
      onStateChange = h.state
    },
  }
}
