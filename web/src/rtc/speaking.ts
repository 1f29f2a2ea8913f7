// Speaking detection: an AnalyserNode per audio stream, polled a few times a second.

let ctx: AudioContext | null = null

/** Calls `onChange(true|false)` when the stream's audio level crosses a speaking threshold. Returns a stop function. */
export function watchSpeaking(stream: MediaStream, onChange: (speaking: boolean) => void): () => void {
  if (typeof AudioContext === 'undefined' || stream.getAudioTracks().length === 0) return () => {}
  ctx ??= new AudioContext()
  if (ctx.state === 'suspended') void ctx.resume().catch(() => {})
  const source = ctx.createMediaStreamSource(stream)
  const analyser = ctx.createAnalyser()
  analyser.fftSize = 512
  source.connect(analyser)
  const buf = new Uint8Array(analyser.fftSize)
  let speaking = false
  let quietTicks = 0
  const timer = setInterval(() => {
    analyser.getByteTimeDomainData(buf)
    let sum = 0
    for (const v of buf) sum += (v - 128) * (v - 128)
    const rms = Math.sqrt(sum / buf.length) / 128
    const loud = rms > 0.04
    quietTicks = loud ? 0 : quietTicks + 1
    const next = loud || (speaking && quietTicks < 4) // hold briefly so the ring does not flicker
    if (next !== speaking) onChange((speaking = next))
  }, 150)
  return () => {
    clearInterval(timer)
    source.disconnect()
  }
}
