// useRecording: records the call on this device. A canvas redraws the tiles as the stage shows
// them (their places, pictures with their fit, names) several times a second, WebAudio mixes
// every audio track on the stage (the own mic included) into one, and MediaRecorder writes both
// to a .webm that is downloaded when the recording stops (by the button, or on leaving the call).
// `recording` rides on this member's state message, so everyone in the room is told; nothing
// stops a modified client from recording without telling, and the notice says so.
import { ref } from 'vue'

/** This page is recording (sent to the others in its state message). */
const recording = ref(false)
/** The recording could not start (no MediaRecorder, or the browser refused). */
const failed = ref(false)

const FPS = 15
const MAX_W = 1280

interface Session {
  recorder: MediaRecorder
  chunks: Blob[]
  timer: ReturnType<typeof setInterval>
  audio: AudioContext
  sources: Map<string, MediaStreamAudioSourceNode>
  name: string
  done: Promise<void>
}
let session: Session | null = null

/** The container and codecs the browser can write, webm first. */
function mimeType(): string {
  const options = ['video/webm;codecs=vp8,opus', 'video/webm;codecs=vp9,opus', 'video/webm']
  return options.find((t) => MediaRecorder.isTypeSupported(t)) ?? ''
}

/** Draws `video` into the box x,y,w,h as the page shows it: cover or contain, mirrored or not. */
function drawVideo(g: CanvasRenderingContext2D, video: HTMLVideoElement, x: number, y: number, w: number, h: number): void {
  const vw = video.videoWidth
  const vh = video.videoHeight
  if (!vw || !vh || video.readyState < 2) return
  const scale = video.dataset.fit === 'cover' ? Math.max(w / vw, h / vh) : Math.min(w / vw, h / vh)
  const dw = vw * scale
  const dh = vh * scale
  g.save()
  g.beginPath()
  g.rect(x, y, w, h)
  g.clip()
  if (video.classList.contains('mirror')) {
    g.translate(x + w, y)
    g.scale(-1, 1)
    g.drawImage(video, (w - dw) / 2, (h - dh) / 2, dw, dh)
  } else {
    g.drawImage(video, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh)
  }
  g.restore()
}

/** One frame: every visible tile of the stage at its place. */
function drawStage(g: CanvasRenderingContext2D, stage: HTMLElement, scale: number): void {
  const box = stage.getBoundingClientRect()
  g.fillStyle = '#101614'
  g.fillRect(0, 0, g.canvas.width, g.canvas.height)
  for (const tile of stage.querySelectorAll<HTMLElement>('.tile')) {
    const r = tile.getBoundingClientRect()
    if (!r.width || !r.height) continue
    const x = (r.left - box.left) * scale
    const y = (r.top - box.top) * scale
    const w = r.width * scale
    const h = r.height * scale
    g.fillStyle = '#26332f'
    g.fillRect(x, y, w, h)
    const cover = tile.querySelector<HTMLElement>('.cam-off-cover')
    const video = tile.querySelector('video')
    if (cover) {
      g.fillStyle = '#fff'
      g.font = `${Math.round(Math.min(w, h) / 4)}px sans-serif`
      g.textAlign = 'center'
      g.textBaseline = 'middle'
      g.fillText(cover.textContent?.trim() ?? '', x + w / 2, y + h / 2)
    } else if (video) {
      drawVideo(g, video, x, y, w, h)
    }
    const name = tile.querySelector('.tile-name')?.textContent?.trim()
    if (name) {
      const size = Math.max(11, Math.round(14 * scale))
      g.font = `600 ${size}px sans-serif`
      g.textAlign = 'start'
      g.textBaseline = 'bottom'
      g.fillStyle = 'rgb(0 0 0 / 55%)'
      g.fillRect(x, y + h - size * 1.6, Math.min(w, g.measureText(name).width + size), size * 1.6)
      g.fillStyle = '#fff'
      g.fillText(name, x + size / 2, y + h - size * 0.3, w - size)
    }
  }
}

/** Adds to the mix every audio track of the stage's videos not in it yet (members come and go). */
function mixAudio(s: Session, dest: MediaStreamAudioDestinationNode, stage: HTMLElement): void {
  for (const v of stage.querySelectorAll('video')) {
    const stream = v.srcObject instanceof MediaStream ? v.srcObject : null
    for (const track of stream?.getAudioTracks() ?? []) {
      if (s.sources.has(track.id) || track.readyState !== 'live') continue
      const source = s.audio.createMediaStreamSource(new MediaStream([track]))
      source.connect(dest)
      s.sources.set(track.id, source)
    }
  }
}

function fileName(room: string): string {
  const d = new Date()
  const p = (n: number) => String(n).padStart(2, '0')
  const safe = room.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 40) || 'call'
  return `peerbox-${safe}-${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}.webm`
}

function save(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob)
  const a = document.createElement('a')
  a.href = url
  a.download = name
  a.rel = 'noopener'
  document.body.append(a)
  a.click()
  a.remove()
  setTimeout(() => URL.revokeObjectURL(url), 60_000)
}

/** Starts recording what `stage` shows and the call's sound; false if the browser cannot. */
function start(stage: HTMLElement, room: string): boolean {
  if (session) return true
  failed.value = false
  try {
    if (typeof MediaRecorder === 'undefined' || typeof AudioContext === 'undefined') throw new Error('no MediaRecorder')
    const canvas = document.createElement('canvas')
    const box = stage.getBoundingClientRect()
    const scale = Math.min(2, MAX_W / Math.max(1, box.width))
    // Even sizes: some encoders refuse odd ones.
    canvas.width = Math.max(2, Math.round((box.width * scale) / 2) * 2)
    canvas.height = Math.max(2, Math.round((box.height * scale) / 2) * 2)
    const g = canvas.getContext('2d')
    if (!g) throw new Error('no 2d canvas')
    const audio = new AudioContext()
    void audio.resume().catch(() => {})
    const dest = audio.createMediaStreamDestination()
    const stream = new MediaStream([...canvas.captureStream(FPS).getVideoTracks(), ...dest.stream.getAudioTracks()])
    const type = mimeType()
    const recorder = new MediaRecorder(stream, type ? { mimeType: type } : {})
    const chunks: Blob[] = []
    let finish = () => {}
    const done = new Promise<void>((resolve) => (finish = resolve))
    const s: Session = { recorder, chunks, audio, sources: new Map(), name: fileName(room), done, timer: setInterval(() => {
      drawStage(g, stage, scale)
      mixAudio(s, dest, stage)
    }, 1000 / FPS) }
    drawStage(g, stage, scale)
    mixAudio(s, dest, stage)
    recorder.ondataavailable = (ev) => {
      if (ev.data.size) chunks.push(ev.data)
    }
    recorder.onstop = () => {
      if (chunks.length) save(new Blob(chunks, { type: recorder.mimeType || 'video/webm' }), s.name)
      finish()
    }
    recorder.start(1000)
    session = s
    recording.value = true
    return true
  } catch (e) {
    console.warn('peerbox: recording', e)
    failed.value = true
    return false
  }
}

/** Stops the recording and downloads it; resolves once the file is handed to the browser. */
async function stop(): Promise<void> {
  const s = session
  if (!s) return
  session = null
  recording.value = false
  clearInterval(s.timer)
  if (s.recorder.state !== 'inactive') {
    s.recorder.stop()
    await s.done
  }
  for (const source of s.sources.values()) source.disconnect()
  void s.audio.close().catch(() => {})
}

export function useRecording() {
  return { recording, failed, start, stop, supported: typeof MediaRecorder !== 'undefined' }
}
