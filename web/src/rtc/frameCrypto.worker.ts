// The worker behind FrameCrypto: one RTCRtpScriptTransform per sender (encrypt) and receiver
// (decrypt), all with the room's frame key (passed in the transform's options). A received frame
// that does not decrypt is dropped: the decoder never sees garbage. Counts go to the page once a second.
import { clearBytes, decryptFrame, encryptFrame, IvSource } from './frameCipher'

interface Options {
  op: 'encrypt' | 'decrypt'
  kind: 'audio' | 'video'
  key: CryptoKey
  /** Told back once this transform is set up. */
  id: number
}

type Frame = RTCEncodedVideoFrame | RTCEncodedAudioFrame

const counts = { encrypted: 0, decrypted: 0, dropped: 0 }
let dirty = false

/** The worker side of an RTCRtpScriptTransform (typed in the webworker lib, not the DOM one this project builds with). */
interface Transformer {
  readable: ReadableStream<Frame>
  writable: WritableStream<Frame>
  options: unknown
}

const scope = self as unknown as {
  onrtctransform: ((ev: { transformer: Transformer }) => void) | null
  postMessage(m: unknown): void
}

setInterval(() => {
  if (!dirty) return
  dirty = false
  scope.postMessage({ ...counts })
}, 1000)

scope.onrtctransform = (ev) => {
  const t = ev.transformer
  const { op, kind, key, id } = t.options as Options
  const ivs = new IvSource()
  const transform = new TransformStream<Frame, Frame>({
    async transform(frame, out) {
      const type = kind === 'video' ? (frame as RTCEncodedVideoFrame).type : undefined
      if (type === 'empty') return out.enqueue(frame)
      const clear = clearBytes(kind, type)
      dirty = true
      if (op === 'encrypt') {
        frame.data = await encryptFrame(key, frame.data, clear, ivs.next())
        counts.encrypted++
        return out.enqueue(frame)
      }
      const plain = await decryptFrame(key, frame.data, clear)
      if (!plain) {
        counts.dropped++
        return
      }
      frame.data = plain
      counts.decrypted++
      out.enqueue(frame)
    },
  })
  void t.readable.pipeThrough(transform).pipeTo(t.writable).catch(() => {})
  scope.postMessage({ attached: id })
}

// The page waits for this before it makes any transform (see FrameCrypto.startWorker).
scope.postMessage({ ready: true })
