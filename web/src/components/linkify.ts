// linkify: splits chat text into plain parts and web links, so links can be rendered as <a>
// elements with the text as text nodes (never HTML). Only http(s) links, and `www.` ones as https;
// trailing punctuation that usually ends a sentence stays outside the link.

export type Part = { text: string; href?: string }

const URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"]+/gi
const TRAILING = /[.,;:!?'")\]}>]+$/

export function linkify(text: string): Part[] {
  const parts: Part[] = []
  let last = 0
  for (const m of text.matchAll(URL_RE)) {
    let raw = m[0]
    // Keep a closing bracket that has its opening one inside the link (Wikipedia-style URLs).
    const trail = raw.match(TRAILING)?.[0] ?? ''
    let cut = trail.length
    if (trail.startsWith(')') && (raw.match(/\(/g)?.length ?? 0) >= (raw.match(/\)/g)?.length ?? 0)) cut = trail.length - 1
    if (cut > 0) raw = raw.slice(0, raw.length - cut)
    const start = m.index ?? 0
    const href = raw.toLowerCase().startsWith('www.') ? `https://${raw}` : raw
    let ok = false
    try {
      const u = new URL(href)
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && (u.hostname.includes('.') || u.hostname === 'localhost')
    } catch {
      ok = false
    }
    if (!ok) continue
    if (start > last) parts.push({ text: text.slice(last, start) })
    parts.push({ text: raw, href })
    last = start + raw.length
  }
  if (last < text.length) parts.push({ text: text.slice(last) })
  return parts
}
