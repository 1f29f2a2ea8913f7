// ChatLink: acks, resend until acked, resend on open, duplicate suppression, state ordering.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ChatLink, type ChannelLike, type ChatMessage } from '../chat'
import { FakeChannel } from './fakePc'

const chat = (id: string, text = 'hi'): ChatMessage =>
  ({ kind: 'chat', id, from: 'a', fromName: 'Ann', text, ts: 1, whisper: false })

function pair() {
  const ca = new FakeChannel('chat')
  const cb = new FakeChannel('chat')
  ca.peer = cb
  cb.peer = ca
  const gotA: ChatMessage[] = []
  const gotB: ChatMessage[] = []
  const states: boolean[] = []
  const a = new ChatLink(ca as unknown as ChannelLike, { onChat: (m) => gotA.push(m), onState: () => {} })
  const b = new ChatLink(cb as unknown as ChannelLike, { onChat: (m) => gotB.push(m), onState: (s) => states.push(s.cam) })
  return { ca, cb, a, b, gotA, gotB, states }
}

beforeEach(() => vi.useFakeTimers())
afterEach(() => vi.useRealTimers())

describe('ChatLink', () => {
  it('delivers, acks and forgets the message', () => {
    const p = pair()
    p.ca.open()
    p.cb.open()
    p.a.send(chat('m1'))
    expect(p.gotB.map((m) => m.text)).toEqual(['hi'])
    expect(p.a.pending.size).toBe(0)
  })

  it('keeps unacked messages and sends them when the channel opens', () => {
    const p = pair()
    p.a.send(chat('m1'))
    expect(p.a.pending.size).toBe(1)
    p.cb.open()
    p.ca.open()
    expect(p.gotB).toHaveLength(1)
    expect(p.a.pending.size).toBe(0)
  })

  it('resends every second until acked, and the receiver drops duplicates but acks', () => {
    const p = pair()
    p.ca.open()
    p.cb.open()
    // The first copy is lost on the wire: b never sees it.
    p.ca.peer = null
    p.a.send(chat('m1'))
    expect(p.gotB).toHaveLength(0)
    p.ca.peer = p.cb
    // The ack of the next copy is lost: a keeps resending, b acks every copy but shows it once.
    p.cb.peer = null
    vi.advanceTimersByTime(1000)
    expect(p.gotB).toHaveLength(1)
    expect(p.a.pending.size).toBe(1)
    p.cb.peer = p.ca
    vi.advanceTimersByTime(1000)
    expect(p.gotB).toHaveLength(1)
    expect(p.a.pending.size).toBe(0)
    vi.advanceTimersByTime(5000)
    expect(p.ca.sent.filter((d) => String(d).includes('"chat"'))).toHaveLength(3)
  })

  it('applies state messages in order of their timestamp', () => {
    const p = pair()
    p.ca.open()
    p.cb.open()
    p.a.send({ kind: 'state', id: 's2', mic: true, cam: false, ts: 2 })
    p.a.send({ kind: 'state', id: 's1', mic: true, cam: true, ts: 1 })
    expect(p.states).toEqual([false])
  })

  it('passes on screen sharing, false when an older client leaves it out', () => {
    const shared: (boolean | undefined)[] = []
    const p = pair()
    p.b.close()
    const b = new ChatLink(p.cb as unknown as ChannelLike, { onChat: () => {}, onState: (s) => shared.push(s.sharing) })
    p.ca.open()
    p.cb.open()
    p.a.send({ kind: 'state', id: 's1', mic: true, cam: true, sharing: true, ts: 1 })
    p.a.send({ kind: 'state', id: 's2', mic: true, cam: true, ts: 2 })
    expect(shared).toEqual([true, false])
    b.close()
  })

  it('renders nothing from garbage and stops resending after close', () => {
    const p = pair()
    p.ca.open()
    p.cb.open()
    p.cb.onmessage!({ data: 'not json' })
    p.cb.onmessage!({ data: '{"kind":"chat"}' })
    expect(p.gotB).toHaveLength(0)
    p.ca.peer = null
    p.a.send(chat('m1'))
    p.a.close()
    vi.advanceTimersByTime(3000)
    expect(p.ca.sent).toHaveLength(1)
  })
})
