// Chat history between members: the page a member answers with (cursor, counts, bytes, never a
// whisper), the checks on a page received, the limits per asker, and the asking side (one member
// at a time; the next on silence, departure or nothing older; the beginning when nobody has more).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { ChatMessage } from '../chat'
import {
  AskerLimits, HistoryPager, PAGE_BYTES, PAGE_MAX, pageOf, readAsk, readPage, utf8Length,
  type HistoryAsk, type PastState,
} from '../history'

const msg = (i: number, extra: Partial<ChatMessage> = {}): ChatMessage =>
  ({ kind: 'chat', id: `m${String(i).padStart(3, '0')}`, from: 'a', fromName: 'Ann', text: `t${i}`, ts: 1000 + i, whisper: false, ...extra })
const list = (n: number) => Array.from({ length: n }, (_, i) => msg(i))
const ask = (before?: ChatMessage): HistoryAsk => ({ kind: 'history-ask', id: 'q', ...(before ? { before: { id: before.id, ts: before.ts } } : {}) })
const ids = (l: { id: string }[]) => l.map((m) => m.id)

describe('pageOf', () => {
  it('answers the newest PAGE_MAX, oldest first, and says whether there is more', () => {
    const kept = list(60)
    const page = pageOf(kept, ask())
    expect(page.messages).toHaveLength(PAGE_MAX)
    expect(page.messages[0]!.id).toBe('m010')
    expect(page.messages.at(-1)!.id).toBe('m059')
    expect(page.more).toBe(true)
    const older = pageOf(kept, ask(kept[10]))
    expect(ids(older.messages)).toEqual(ids(kept.slice(0, 10)))
    expect(older.more).toBe(false)
    expect(pageOf(kept, ask(kept[0])).messages).toEqual([])
  })

  it('uses the cursor by time, then id, even when the cursor is not kept here', () => {
    const kept = [msg(1), msg(2, { id: 'b', ts: 5000 }), msg(3, { id: 'd', ts: 5000 })]
    expect(ids(pageOf(kept, { kind: 'history-ask', id: 'q', before: { id: 'c', ts: 5000 } }).messages)).toEqual(['m001', 'b'])
  })

  it('never puts a whisper in, and strips what only this member knows', () => {
    const kept = [msg(1), msg(2, { whisper: true }), { ...msg(3), mine: true, past: true } as ChatMessage]
    const page = pageOf(kept, ask())
    expect(ids(page.messages)).toEqual(['m001', 'm003'])
    expect(page.messages[1]).toEqual({ kind: 'chat', id: 'm003', from: 'a', fromName: 'Ann', text: 't3', ts: 1003, whisper: false })
  })

  it('stays within the byte limit (UTF-8) and the bytes it is given', () => {
    const kept = Array.from({ length: 50 }, (_, i) => msg(i, { text: '한'.repeat(4000) }))
    const page = pageOf(kept, ask())
    expect(utf8Length(JSON.stringify(page))).toBeLessThanOrEqual(PAGE_BYTES)
    expect(page.messages.length).toBe(5)
    expect(page.more).toBe(true)
    const small = pageOf(kept, ask(), 20_000)
    expect(utf8Length(JSON.stringify(small))).toBeLessThanOrEqual(20_000)
    expect(small.messages.length).toBe(1)
  })
})

describe('readPage', () => {
  const before = { id: 'm100', ts: 1100 }
  it('keeps well-formed public messages older than the cursor, once each, in order', () => {
    const got = readPage({ messages: [msg(5), msg(3), msg(5), msg(150), msg(4, { whisper: true })] }, before, 2000)
    expect(ids(got!)).toEqual(['m003', 'm005'])
    expect(got![0]!.past).toBe(true)
  })

  it('drops messages of the wrong shape or size', () => {
    const bad = [
      null, 'x', { ...msg(1), id: 5 }, { ...msg(2), id: '' }, { ...msg(3), id: 'x'.repeat(65) },
      { ...msg(4), text: 'x'.repeat(4001) }, { ...msg(5), text: '' }, { ...msg(6), fromName: 'x'.repeat(65) },
      { ...msg(7), ts: 'soon' }, { ...msg(8), ts: Infinity }, { ...msg(9), ts: -1 }, { ...msg(10), whisper: 'yes' },
      { ...msg(11), from: undefined },
    ]
    expect(readPage({ messages: [...bad, msg(12)] }, before, 2000)).toEqual([{ ...msg(12), past: true }])
  })

  it('drops a message from the future, which would sort below the live chat', () => {
    expect(readPage({ messages: [msg(1, { ts: 10_000_000 })] }, undefined, 1000)).toEqual([])
  })

  it('refuses a page that is not one', () => {
    expect(readPage(null, before)).toBeNull()
    expect(readPage({ messages: 'x' }, before)).toBeNull()
    expect(readPage({ messages: list(PAGE_MAX + 1) }, before)).toBeNull()
  })
})

describe('readAsk', () => {
  it('reads the cursor, or none; refuses a malformed one', () => {
    expect(readAsk({ id: 'q' })).toEqual({ id: 'q' })
    expect(readAsk({ id: 'q', before: { id: 'm', ts: 5 } })).toEqual({ id: 'q', before: { id: 'm', ts: 5 } })
    expect(readAsk({ id: 'q', before: { id: 'm' } })).toBeNull()
    expect(readAsk({ id: 'q', before: 'm' })).toBeNull()
    expect(readAsk({ id: 7 })).toBeNull()
  })
})

describe('AskerLimits', () => {
  it('answers a burst of asks, then one every 2 s, each asker apart', () => {
    let now = 0
    const limits = new AskerLimits(() => now)
    const answered = () => Array.from({ length: 10 }, () => limits.allow('x')).filter((b) => b > 0).length
    expect(answered()).toBe(8)
    expect(limits.allow('y')).toBe(PAGE_BYTES)
    now += 2000
    expect(answered()).toBe(1)
    limits.forget('x')
    expect(answered()).toBe(8)
  })

  it('bounds the bytes sent to one asker', () => {
    let now = 0
    const limits = new AskerLimits(() => now)
    for (let i = 0; i < 8; i++) {
      const b = limits.allow('x')
      if (b) limits.spent('x', b)
    }
    now += 20_000 // asks are back (10), bytes only 640 KiB worth: 512 KiB at most
    let total = 0
    for (let i = 0; i < 10; i++) {
      const b = limits.allow('x')
      limits.spent('x', b)
      total += b
    }
    expect(total).toBe(512 * 1024)
  })
})

describe('HistoryPager', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  function setup(members: { id: string; open: boolean }[]) {
    const sent: [string, HistoryAsk][] = []
    const got: ChatMessage[][] = []
    const states: PastState[] = []
    const pager = new HistoryPager({
      members: () => members,
      send: (to, a) => sent.push([to, a]),
      onMessages: (m) => got.push(m),
      onState: (s) => states.push(s),
      timeoutMs: 1000,
    })
    const answer = (from: string, messages: unknown[], more = false) =>
      pager.receive(from, { kind: 'history-page', id: sent.at(-1)![1].id, messages, more })
    return { pager, sent, got, states, answer, members }
  }

  it('asks one member; a page answers it and ignores what it did not ask for', () => {
    const t = setup([{ id: 'a', open: true }, { id: 'b', open: true }])
    t.pager.load(null)
    expect(t.sent.map(([to, a]) => [to, a.before])).toEqual([['a', undefined]])
    t.pager.receive('b', { kind: 'history-page', id: t.sent[0]![1].id, messages: [msg(1)], more: true })
    t.pager.receive('a', { kind: 'history-page', id: 'other', messages: [msg(1)], more: true })
    expect(t.got).toEqual([])
    t.answer('a', [msg(1), msg(2)], true)
    expect(t.got.map(ids)).toEqual([['m001', 'm002']])
    expect(t.states).toEqual(['loading', 'idle'])
    // Asked again (it has more) with the cursor given.
    t.pager.load({ id: 'm001', ts: 1001 })
    expect(t.sent.at(-1)).toEqual(['a', { kind: 'history-ask', id: expect.any(String), before: { id: 'm001', ts: 1001 } }])
  })

  it('asks the next member on silence, on departure and when one has nothing older; then says it is the start', () => {
    const t = setup([{ id: 'a', open: true }, { id: 'b', open: true }, { id: 'c', open: true }])
    t.pager.load(null)
    vi.advanceTimersByTime(1000) // a is silent
    expect(t.sent.map(([to]) => to)).toEqual(['a', 'b'])
    t.members.splice(1, 1) // b leaves
    t.pager.gone('b')
    expect(t.sent.map(([to]) => to)).toEqual(['a', 'b', 'c'])
    t.answer('c', [msg(1)]) // nothing more at c: a is asked on at once, from the new oldest message
    expect(t.got).toHaveLength(1)
    expect(t.sent.at(-1)).toEqual(['a', { kind: 'history-ask', id: expect.any(String), before: { id: 'm001', ts: 1001 } }])
    expect(t.states.at(-1)).toBe('loading')
    t.answer('a', [])
    expect(t.states.at(-1)).toBe('start')
    t.pager.load({ id: 'm001', ts: 1001 })
    expect(t.sent).toHaveLength(4) // at the start: nobody is asked again
  })

  it('fails when nobody answers sensibly, and tries again when a member connects', () => {
    const t = setup([{ id: 'a', open: true }])
    t.pager.load(null)
    t.answer('a', 'nonsense' as unknown as unknown[])
    expect(t.states).toEqual(['loading', 'failed'])
    t.pager.wake()
    expect(t.sent).toHaveLength(2)
    expect(t.states.at(-1)).toBe('loading')
  })

  it('waits for a channel to open before asking (a newcomer), and gives up after a while', () => {
    const t = setup([{ id: 'a', open: false }])
    t.pager.load(null)
    expect(t.sent).toEqual([])
    t.members[0]!.open = true
    t.pager.wake()
    expect(t.sent.map(([to]) => to)).toEqual(['a'])
    const u = setup([{ id: 'a', open: false }])
    u.pager.load(null)
    vi.advanceTimersByTime(4000)
    expect(u.states).toEqual(['loading', 'failed'])
  })

  it('knows the start when it came in first, and forgets it on reset', () => {
    const t = setup([])
    t.pager.atStart()
    t.pager.load(null)
    expect(t.sent).toEqual([])
    t.pager.reset()
    expect(t.states).toEqual(['start', 'idle'])
  })
})
