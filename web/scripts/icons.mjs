// Draws the peerbox logo into PNG icons with Node's zlib (no image libraries).
// Run with `npm run icons`; the PNGs are committed under public/.
import { writeFileSync, mkdirSync } from 'node:fs'
import { deflateSync } from 'node:zlib'

const CRC = new Int32Array(256).map((_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c
})
const crc32 = (buf) => {
  let c = -1
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8)
  return (c ^ -1) >>> 0
}
function chunk(type, data) {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const td = Buffer.concat([Buffer.from(type), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(td))
  return Buffer.concat([len, td, crc])
}
function png(w, h, pixel) {
  const raw = Buffer.alloc((w * 4 + 1) * h)
  for (let y = 0; y < h; y++) {
    raw[y * (w * 4 + 1)] = 0
    for (let x = 0; x < w; x++) {
      const [r, g, b, a] = pixel(x, y)
      raw.set([r, g, b, a], y * (w * 4 + 1) + 1 + x * 4)
    }
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr.set([8, 6, 0, 0, 0], 8)
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0)),
  ])
}

const TEAL = [31, 111, 92, 255]
const WHITE = [255, 255, 255, 255]
const CLEAR = [0, 0, 0, 0]

function inRoundRect(x, y, x0, y0, x1, y1, r) {
  if (x < x0 || x > x1 || y < y0 || y > y1) return false
  const cx = Math.min(Math.max(x, x0 + r), x1 - r)
  const cy = Math.min(Math.max(y, y0 + r), y1 - r)
  return (x - cx) ** 2 + (y - cy) ** 2 <= r * r
}
/** The logo in a 64-unit box (same shapes as favicon.svg): camera body and lens triangle. */
function logo(u, v) {
  if (inRoundRect(u, v, 12, 20, 38, 44, 4)) return true
  if (u >= 38 && u <= 50) {
    const t = (u - 38) / 12
    return v >= 28 - 7 * t && v <= 36 + 7 * t
  }
  return false
}
/** Supersampled icon: `pad` shrinks the logo for maskable safe zones; `round` keeps the rounded tile. */
function icon(size, { pad = 0, round = true } = {}) {
  const s = 64 / size
  return png(size, size, (x, y) => {
    let hits = 0
    let inside = 0
    for (let i = 0; i < 4; i++) {
      const px = (x + (i % 2) * 0.5 + 0.25) * s
      const py = (y + Math.floor(i / 2) * 0.5 + 0.25) * s
      if (!round || inRoundRect(px, py, 0, 0, 64, 64, 14)) inside++
      const u = 32 + (px - 32) / (1 - pad)
      const v = 32 + (py - 32) / (1 - pad)
      if (logo(u, v)) hits++
    }
    if (inside === 0) return CLEAR
    const a = inside / 4
    const m = hits / 4
    return [0, 1, 2].map((k) => Math.round(TEAL[k] * (1 - m) + WHITE[k] * m)).concat(Math.round(255 * a))
  })
}
mkdirSync(new URL('../public/icons/', import.meta.url), { recursive: true })
const out = (p, buf) => writeFileSync(new URL(`../public/${p}`, import.meta.url), buf)
out('icons/icon-192.png', icon(192))
out('icons/icon-512.png', icon(512))
out('icons/maskable-512.png', icon(512, { pad: 0.3, round: false }))
console.log('icons written')
