// Frame encryption for SFU media (contract point 7), shared by the worker and the unit tests.
// A frame goes out as: its first bytes in the clear (what the SFU and the receiver's depacketizer
// read: 10 bytes of a VP8 keyframe, 3 of a delta frame, 1 of an Opus frame), then the rest
// encrypted with AES-GCM (the clear bytes as additional data, so they cannot be changed either),
// then the 12-byte IV. The IV is unique per frame: 8 random bytes per sender, then a frame counter.

export const IV_BYTES = 12
const TAG_BYTES = 16

/** How many leading bytes of a frame stay readable by the SFU. */
export function clearBytes(kind: 'audio' | 'video', type: string | undefined): number {
  if (kind === 'audio') return 1
  return type === 'key' ? 10 : 3
}

/** One sender's IVs: a random 8-byte prefix and a 32-bit frame counter. */
export class IvSource {
  private readonly prefix: Uint8Array
  private counter = 0

  constructor(random: (b: Uint8Array) => Uint8Array = (b) => crypto.getRandomValues(b)) {
    this.prefix = random(new Uint8Array(8))
  }

  next(): Uint8Array {
    const iv = new Uint8Array(IV_BYTES)
    iv.set(this.prefix)
    new DataView(iv.buffer).setUint32(8, this.counter)
    // After 2^32 frames (two years at 60 fps) a new prefix keeps IVs unique.
    this.counter = (this.counter + 1) >>> 0
    if (this.counter === 0) crypto.getRandomValues(this.prefix)
    return iv
  }
}

export async function encryptFrame(key: CryptoKey, data: ArrayBuffer, clear: number, iv: Uint8Array): Promise<ArrayBuffer> {
  const bytes = new Uint8Array(data)
  const n = Math.min(clear, bytes.length)
  const header = bytes.subarray(0, n)
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: iv as BufferSource, additionalData: header as BufferSource }, key, bytes.subarray(n) as BufferSource))
  const out = new Uint8Array(n + sealed.length + IV_BYTES)
  out.set(header)
  out.set(sealed, n)
  out.set(iv, n + sealed.length)
  return out.buffer
}

/** The frame as it was before encryptFrame, or null when it does not decrypt (wrong key, not encrypted, changed). */
export async function decryptFrame(key: CryptoKey, data: ArrayBuffer, clear: number): Promise<ArrayBuffer | null> {
  const bytes = new Uint8Array(data)
  const n = Math.min(clear, bytes.length)
  if (bytes.length < n + TAG_BYTES + IV_BYTES) return null
  const header = bytes.subarray(0, n)
  const iv = bytes.subarray(bytes.length - IV_BYTES)
  try {
    const plain = new Uint8Array(await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: iv as BufferSource, additionalData: header as BufferSource }, key,
      bytes.subarray(n, bytes.length - IV_BYTES) as BufferSource))
    const out = new Uint8Array(n + plain.length)
    out.set(header)
    out.set(plain, n)
    return out.buffer
  } catch {
    return null
  }
}

const enc = new TextEncoder()

/** The AES-GCM frame key of a room: HKDF-SHA-256 of the room secret, salt the room id, info "peerbox sfu frame key". */
export async function deriveFrameKey(secret: string, room: string): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey('raw', enc.encode(secret), 'HKDF', false, ['deriveKey'])
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: enc.encode(room), info: enc.encode('peerbox sfu frame key') },
    base, { name: 'AES-GCM', length: 128 }, false, ['encrypt', 'decrypt'])
}
