// Audio levels: an AnalyserNode per audio stream, polled a few times a second. watchLevel gives
// the level (the mic meter before joining); watchSpeaking turns it into speaking / not speaking.

let ctx: AudioContext | null = null

/** Calls `onLevel` with the RMS level (0..1) of the stream's audio every `everyMs`. Returns a stop function. */
export function watchLevel(stream: MediaStream, onLevel: (level: number) => void, everyMs = 150): () => void {
  if (typeof AudioContext === 'undefined' || stream.getAudioTracks().length === 0) return () => {}
  ctx ??= new AudioContext()
  if (ctx.state === 'suspended') void ctx.resume().catch(() => {})
  const source = ctx.createMediaStreamSource(stream)
  const analyser = ctx.createAnalyser()
  analyser.fftSize = 512
  source.connect(analyser)
  const buf = new Uint8Array(analyser.fftSize)
  const timer = setInterval(() => {
    analyser.getByteTimeDomainData(buf)
    let sum = 0
    for (const v of buf) sum += (v - 128) * (v - 128)
    onLevel(Math.sqrt(sum / buf.length) / 128)
  }, everyMs)
  return () => {
    clearInterval(timer)
    source.disconnect()
  }
}

/** Calls `onChange(true|false)` when the stream's audio level crosses a speaking threshold. Returns a stop function. */
export function watchSpeaking(stream: MediaStream, onChange: (speaking: boolean) => void): () => void {
  let speaking = false
  let quietTicks = 0
  return watchLevel(stream, (rms) => {
    const loud = rms > 0.04
    quietTicks = loud ? 0 : quietTicks + 1
    const next = loud || (speaking && quietTicks < 4) // hold briefly so the ring does not flicker
    if (next !== speaking) onChange((speaking = next))
  })
}
