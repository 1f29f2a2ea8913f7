import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ChatLink, type ChannelLike, type StateMessage } from '../chat'
import { isReaction, RateLimit, REACTION_MAX, REACTION_WINDOW_MS, REACTIONS, type Reaction } from '../reactions'
import { FakeChannel } from './fakePc'

beforeEach(() => vi.useFakeTimers())
afterEach(() => vi.useRealTimers())

function pair() {
  const ca = new FakeChannel('chat')
  const cb = new FakeChannel('chat')
  ca.peer = cb
  cb.peer = ca
  const got: Reaction[] = []
  const states: StateMessage[] = []
  const a = new ChatLink(ca as unknown as ChannelLike, { onChat: () => {}, onState: () => {} })
  const b = new ChatLink(cb as unknown as ChannelLike, { onChat: () => {}, onState: (s) => states.push(s), onReaction: (e) => got.push(e) })
  ca.open()
  cb.open()
  return { ca, cb, a, b, got, states }
}

describe('reactions', () => {
  it('knows six reactions and nothing else', () => {
    expect(REACTIONS).toHaveLength(6)
    for (const r of REACTIONS) expect(isReaction(r)).toBe(true)
    for (const x of ['💩', '', '👍👍', '<img>', 1, null, undefined, {}]) expect(isReaction(x)).toBe(false)
  })

  it('rate-limits within a sliding window', () => {
    const l = new RateLimit(REACTION_MAX, REACTION_WINDOW_MS)
    const allowed = Array.from({ length: 10 }, (_, i) => l.allow(i * 10)).filter(Boolean)
    expect(allowed).toHaveLength(REACTION_MAX)
    expect(l.allow(REACTION_WINDOW_MS - 1)).toBe(false)
    expect(l.allow(REACTION_WINDOW_MS)).toBe(true)
  })

  it('travel over the chat channel without an ack or a resend', () => {
    const p = pair()
    expect(p.a.sendReaction('🎉', 'r1')).toBe(true)
    expect(p.got).toEqual(['🎉'])
    expect(p.a.pending.size).toBe(0)
    vi.advanceTimersByTime(3000)
    expect(p.ca.sent).toHaveLength(1)
    expect(p.cb.sent).toHaveLength(0)
  })

  it('the receiver drops unknown emoji and malformed messages', () => {
    const p = pair()
    for (const emoji of ['💩', 42, '<b>x</b>', undefined]) {
      p.ca.send(JSON.stringify({ kind: 'reaction', id: `x${String(emoji)}`, emoji, ts: 1 }))
    }
    p.ca.send('{"kind":"reaction"}')
    expect(p.got).toEqual([])
  })
})

describe('recording state', () => {
  it('rides on the state message, and is false when absent (older clients)', () => {
    const p = pair()
    p.a.send({ kind: 'state', id: 's1', mic: true, cam: true, recording: true, ts: 1 })
    p.a.send({ kind: 'state', id: 's2', mic: true, cam: true, ts: 2 })
    expect(p.states.map((s) => s.recording)).toEqual([true, false])
  })
})
