// Local media: camera and mic, mute, camera off, switching cameras, screen sharing.
import { markRaw, ref, shallowRef } from 'vue'

export type MediaProblem = 'denied' | 'missing' | 'in-use' | 'insecure' | 'other' | null

const stream = shallowRef<MediaStream | null>(null)
const micOn = ref(true)
const camOn = ref(true)
const sharing = ref(false)
const problem = ref<MediaProblem>(null)
const receiveOnly = ref(false)
const facing = ref<'user' | 'environment'>('user')
const canSwitch = ref(false)
const canShare = typeof navigator !== 'undefined' && !!navigator.mediaDevices?.getDisplayMedia
let cameraTrack: MediaStreamTrack | null = null
let screenTrack: MediaStreamTrack | null = null
/** Called with the new outgoing video track (screen, camera): the room swaps it into every sender. */
let onVideoTrack: (track: MediaStreamTrack | null) => void = () => {}
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

function stop(): void {
  for (const t of stream.value?.getTracks() ?? []) t.stop()
  screenTrack?.stop()
  screenTrack = null
  sharing.value = false
  stream.value = null
  cameraTrack = null
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
  if (!cameraTrack || sharing.value) return
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
    const s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false })
    screenTrack = s.getVideoTracks()[0] ?? null
    if (!screenTrack) return
    screenTrack.onended = () => stopShare()
    sharing.value = true
    swapVideo(screenTrack)
    onStateChange()
  } catch {
    /* the person cancelled the picker */
  }
}

function stopShare(): void {
  if (!sharing.value) return
  sharing.value = false
  screenTrack?.stop()
  screenTrack = null
  if (cameraTrack) swapVideo(cameraTrack)
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
  receiveOnly.value = true
  problem.value = null
}

export function useMedia() {
  return {
    stream, micOn, camOn, sharing, problem, receiveOnly, canSwitch, canShare,
    start, stop, whenReady: () => starting ?? Promise.resolve(), toggleMic, toggleCam, switchCamera, toggleShare, joinWithoutMedia, acceptProblem,
    hooks(h: { videoTrack: (t: MediaStreamTrack | null) => void; state: () => void }) {
      onVideoTrack = h.videoTrack
      onStateChange = h.state
    },
  }
}
