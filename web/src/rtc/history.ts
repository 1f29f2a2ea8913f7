// History: the chat so far, kept by the members themselves (no server storage). What a member
// keeps (bounded), the page it answers an ask with, how often and how much it answers each asker,
// the checks on a page it receives, and the asking side: one member at a time, the next one when
// the member asked leaves, stays silent or has nothing older.
import type { ChatMessage } from './chat'

/** Messages in one page, and its size on the wire (UTF-8 bytes of the whole JSON message). */
export const PAGE_MAX = 50
export const PAGE_BYTES = 64 * 1024
/** Public messages a member keeps in memory, and their total size (whispers are never kept). */
export const KEEP_MAX = 1000
export const KEEP_BYTES = 1024 * 1024
/** How long the asked member has to answer before the next one is asked. */
export const ASK_TIMEOUT_MS = 4000

const MAX_ID = 64
const MAX_NAME = 64
const MAX_TEXT = 4000

/** Where a page ends: the oldest message the asker has (pages hold only older ones). */
export interface Cursor {
  id: string
  ts: number
}

export interface HistoryAsk {
  kind: 'history-ask'
  id: string
  /** Absent: the newest page. */
  before?: Cursor
}

export interface HistoryPage {
  kind: 'history-page'
  /** The ask this answers. */
  id: string
  messages: ChatMessage[]
  /** The member has older messages than these. */
  more: boolean
}

/** Time order, with the id breaking ties, so every member sorts alike. */
export function compare(a: Cursor, b: Cursor): number {
  return a.ts - b.ts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

export function utf8Length(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      n += 4 // a surrogate pair
      i++
    } else n += 3
  }
  return n
}

const wire = ({ kind, id, from, fromName, text, ts }: ChatMessage): ChatMessage =>
  ({ kind, id, from, fromName, text, ts, whisper: false })

const sizes = new WeakMap<object, number>()
/** What a kept message counts against KEEP_BYTES: its size on the wire. */
export function sizeOf(m: ChatMessage): number {
  let n = sizes.get(m)
  if (n === undefined) sizes.set(m, (n = utf8Length(JSON.stringify(wire(m)))))
  return n
}

/**
 * The page answering `before` from `kept` (public messages in time order): the newest ones older
 * than the cursor, at most PAGE_MAX and `maxBytes` in all, returned oldest first.
 */
export function pageOf(kept: readonly ChatMessage[], ask: HistoryAsk, maxBytes = PAGE_BYTES): HistoryPage {
  const page: HistoryPage = { kind: 'history-page', id: ask.id, messages: [], more: false }
  let end = kept.length
  if (ask.before) {
    const before = ask.before
    while (end > 0 && compare(kept[end - 1]!, before) >= 0) end--
  }
  let bytes = utf8Length(JSON.stringify(page))
  let i = end
  while (i > 0 && page.messages.length < PAGE_MAX) {
    const m = kept[i - 1]!
    if (m.whisper) {
      i--
      continue
    }
    const size = sizeOf(m) + 1 // and its comma
    if (bytes + size > maxBytes) break
    bytes += size
    page.messages.push(wire(m))
    i--
  }
  page.more = kept.slice(0, i).some((m) => !m.whisper)
  page.messages.reverse()
  return page
}

const text = (v: unknown, max: number, min = 0): v is string => typeof v === 'string' && v.length >= min && v.length <= max

/**
 * The messages of a received page that may be shown: the right shape and sizes, public, and
 * older than the cursor asked with. Null when the page itself is malformed (or too big).
 */
export function readPage(raw: unknown, before: Cursor | undefined, now = Date.now()): ChatMessage[] | null {
  if (typeof raw !== 'object' || raw === null) return null
  const p = raw as Record<string, unknown>
  if (!Array.isArray(p.messages) || p.messages.length > PAGE_MAX) return null
  const out: ChatMessage[] = []
  const ids = new Set<string>()
  for (const item of p.messages as unknown[]) {
    if (typeof item !== 'object' || item === null) continue
    const m = item as Record<string, unknown>
    if (m.whisper !== false && m.whisper !== undefined) continue // never a whisper, nor anything unclear
    if (!text(m.id, MAX_ID, 1) || !text(m.from, MAX_ID) || !text(m.fromName, MAX_NAME) || !text(m.text, MAX_TEXT, 1)) continue
    const ts = m.ts
    // A time in the future (beyond clock skew) would sort a made-up message below the live ones.
    if (typeof ts !== 'number' || !Number.isFinite(ts) || ts <= 0 || ts > now + 3_600_000) continue
    const msg: ChatMessage = { kind: 'chat', id: m.id, from: m.from, fromName: m.fromName, text: m.text, ts, whisper: false, past: true }
    if (before && compare(msg, before) >= 0) continue
    if (ids.has(msg.id)) continue
    ids.add(msg.id)
    out.push(msg)
  }
  return out.sort(compare)
}

/** A token bucket: `capacity` tokens, `perSec` back each second. */
class Bucket {
  private tokens: number
  private at: number
  constructor(private readonly capacity: number, private readonly perSec: number, now: number) {
    this.tokens = capacity
    this.at = now
  }
  available(now: number): number {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.at) / 1000) * this.perSec)
    this.at = now
    return this.tokens
  }
  take(n: number): void {
    this.tokens -= n
  }
}

/**
 * How often and how much a member answers each asker: a burst of 8 pages, then one every 2 s;
 * 512 KiB, then 32 KiB a second. An ask over either is not answered (the asker moves on).
 */
export class AskerLimits {
  private askers = new Map<string, { asks: Bucket; bytes: Bucket }>()
  constructor(private readonly clock: () => number = () => performance.now()) {}

  /** The bytes `asker` may be sent now (0: do not answer), counting the ask. */
  allow(asker: string): number {
    const now = this.clock()
    let a = this.askers.get(asker)
    if (!a) this.askers.set(asker, (a = { asks: new Bucket(8, 0.5, now), bytes: new Bucket(512 * 1024, 32 * 1024, now) }))
    const bytes = Math.min(PAGE_BYTES, Math.floor(a.bytes.available(now)))
    if (a.asks.available(now) < 1 || bytes < 1024) return 0
    a.asks.take(1)
    return bytes
  }

  spent(asker: string, bytes: number): void {
    this.askers.get(asker)?.bytes.take(bytes)
  }

  forget(asker: string): void {
    this.askers.delete(asker)
  }
}

/**
 * Where scrolling back stands: `idle` (may ask), `loading`, `start` (every member says there is
 * nothing older: the beginning of the conversation), `failed` (someone did not answer; may ask
 * again).
 */
export type PastState = 'idle' | 'loading' | 'start' | 'failed'

export interface PagerDeps {
  /** The members present, and whether each can be asked now (its chat channel is open). */
  members(): { id: string; open: boolean }[]
  send(to: string, ask: HistoryAsk): void
  /** A page's checked messages (at least one). */
  onMessages(messages: ChatMessage[]): void
  onState(state: PastState): void
  timeoutMs?: number
}

/** The cursor of an ask, read from the wire: undefined for none, null when malformed. */
export function readAsk(raw: Record<string, unknown>): { id: string; before?: Cursor } | null {
  if (!text(raw.id, MAX_ID, 1)) return null
  if (raw.before === undefined || raw.before === null) return { id: raw.id }
  const b = raw.before as Record<string, unknown>
  if (typeof b !== 'object' || !text(b.id, MAX_ID) || typeof b.ts !== 'number' || !Number.isFinite(b.ts)) return null
  return { id: raw.id, before: { id: b.id, ts: b.ts } }
}

/** The asking side: one ask at a time, to one member at a time. */
export class HistoryPager {
  state: PastState = 'idle'
  private ask: { msg: HistoryAsk; to: string } | null = null
  private timer: ReturnType<typeof setTimeout> | null = null
  /** The cursor being asked for (undefined: no ask under way). */
  private wanted: Cursor | null | undefined = undefined
  /** The cursor of the last ask that failed, for a retry when another member connects. */
  private retry: Cursor | null | undefined = undefined
  /** Members who have nothing older than the oldest message here (the cursor only moves back). */
  private exhausted = new Set<string>()
  /** Members asked for the current cursor who did not answer (or answered nonsense). */
  private silent = new Set<string>()
  /** Who answered last with more to give: asked first next time. */
  private preferred = ''

  constructor(private readonly deps: PagerDeps) {}

  /** Asks for the page before `before` (null: the newest). Ignored while an ask runs or at the start. */
  load(before: Cursor | null): void {
    if (this.state === 'loading' || this.state === 'start') return
    this.silent.clear()
    this.wanted = before
    this.retry = undefined
    this.set('loading')
    this.next()
  }

  /** The beginning is known (nobody was there before this member). */
  atStart(): void {
    this.stop()
    this.set('start')
  }

  /** A member's chat channel opened: an ask waiting for one goes out, a failed one is tried again. */
  wake(): void {
    if (this.state === 'loading' && !this.ask) this.next()
    else if (this.state === 'failed' && this.retry !== undefined) this.load(this.retry)
  }

  /** A member left: if it was the one asked, the next one is. */
  gone(id: string): void {
    this.exhausted.delete(id)
    this.silent.delete(id)
    if (this.preferred === id) this.preferred = ''
    if (this.state === 'loading' && (this.ask?.to === id || !this.ask)) {
      this.ask = null
      this.next()
    }
  }

  receive(from: string, page: Record<string, unknown>): void {
    const ask = this.ask
    if (!ask || ask.to !== from || page.id !== ask.msg.id) return // not what we asked for
    this.ask = null
    const messages = readPage(page, ask.msg.before)
    if (messages === null) {
      this.silent.add(from)
      this.next()
      return
    }
    if (!messages.length || page.more !== true) this.exhausted.add(from)
    if (!messages.length) {
      this.next()
      return
    }
    this.preferred = page.more === true ? from : ''
    this.deps.onMessages(messages)
    if (page.more === true) {
      this.stop()
      this.set('idle')
      return
    }
    // That member has nothing older: someone else may (they came earlier). Asking on at once
    // finds the beginning without another scroll.
    const oldest = messages[0]!
    this.silent.clear()
    this.wanted = { id: oldest.id, ts: oldest.ts }
    this.next()
  }

  /** Back to the beginning (a new session: other members, another conversation). */
  reset(): void {
    this.stop()
    this.exhausted.clear()
    this.preferred = ''
    this.set('idle')
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.ask = null
    this.wanted = undefined
    this.silent.clear()
  }

  /** Asks the next member who may have older messages, or settles how this ask ended. */
  private next(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    const wanted = this.wanted
    if (wanted === undefined) return
    const members = this.deps.members().filter((m) => !this.exhausted.has(m.id) && !this.silent.has(m.id))
    const open = members.filter((m) => m.open).map((m) => m.id)
    const ms = this.deps.timeoutMs ?? ASK_TIMEOUT_MS
    if (!open.length) {
      if (members.length) {
        // Someone is still connecting: wake() asks once its channel opens; give up after a while.
        this.timer = setTimeout(() => {
          for (const m of members) this.silent.add(m.id)
          this.next()
        }, ms * 4)
        return
      }
      const failed = this.silent.size > 0
      this.stop()
      if (failed) this.retry = wanted
      this.set(failed ? 'failed' : this.exhausted.size ? 'start' : 'idle')
      return
    }
    const to = open.includes(this.preferred) ? this.preferred : open[0]!
    const msg: HistoryAsk = { kind: 'history-ask', id: crypto.randomUUID(), ...(wanted ? { before: wanted } : {}) }
    this.ask = { msg, to }
    this.timer = setTimeout(() => {
      this.ask = null
      this.silent.add(to)
      this.next()
    }, ms)
    this.deps.send(to, msg)
  }

  private set(state: PastState): void {
    if (this.state === state) return
    this.state = state
    this.deps.onState(state)
  }
}
