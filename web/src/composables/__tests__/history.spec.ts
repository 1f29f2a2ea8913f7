// Chat history in the list: what is answered from (public messages only, in order), the cursor,
// how pages merge (in time order, once however many members send them) and what is kept.
import { describe, expect, it } from 'vitest'
import { KEEP_BYTES, KEEP_MAX } from '../../rtc/history'
import { bound, cursorOf, isFull, kept, mergePage, type ChatEntry, type NoticeEntry } from '../useChat'

const msg = (id: string, ts: number, whisper = false, text = id): ChatEntry => ({
  kind: 'chat', id, from: 'a', fromName: 'Ann', text, ts, whisper, mine: false,
})
const notice: NoticeEntry = { kind: 'notice', id: 'n', ts: 5, event: 'joined', name: 'Bob' }
const ids = (l: { id: string }[]) => l.map((m) => m.id)

describe('chat history in the list', () => {
  it('answers from public messages in time order, never whispers or notices', () => {
    const list = [msg('2', 7), msg('1', 1), notice, msg('w', 6, true), msg('3', 8)]
    expect(ids(kept(list))).toEqual(['1', '2', '3'])
    expect(cursorOf(list)).toEqual({ id: '1', ts: 1 })
    expect(cursorOf([notice, msg('w', 1, true)])).toBeNull()
  })

  it('merges in time order, once, and refuses whispers', () => {
    let list: (ChatEntry | NoticeEntry)[] = [msg('late', 10)]
    list = mergePage(list, [msg('early', 2)])
    list = mergePage(list, [msg('early', 2)]) // the same again, from another member
    list = mergePage(list, [msg('mid', 5), msg('secret', 3, true), msg('early', 2), msg('mid', 5)])
    expect(ids(list)).toEqual(['early', 'mid', 'late'])
    expect(list.filter((m) => m.kind === 'chat' && m.past).length).toBe(2)
  })

  it('puts messages of the same time in id order, as every member sorts them', () => {
    const list = mergePage([msg('b', 5)], [msg('c', 5), msg('a', 5)])
    expect(ids(list)).toEqual(['a', 'b', 'c'])
  })

  it('keeps at most KEEP_MAX public messages, dropping the oldest, and other entries apart', () => {
    const many = Array.from({ length: KEEP_MAX + 10 }, (_, i) => msg(`m${i}`, i))
    const list = bound([...many, msg('w', KEEP_MAX + 20, true), notice])
    expect(kept(list)).toHaveLength(KEEP_MAX)
    expect(kept(list)[0]!.id).toBe('m10')
    expect(ids(list).slice(-2)).toEqual(['w', 'n'])
    expect(isFull(list)).toBe(true)
    expect(isFull(list.slice(-100))).toBe(false)
  })

  it('keeps at most KEEP_BYTES of public messages', () => {
    const big = 'x'.repeat(4000)
    const n = Math.ceil(KEEP_BYTES / 4000) + 20
    const list = bound(Array.from({ length: n }, (_, i) => msg(`m${i}`, i, false, big)))
    expect(list.length).toBeLessThan(n - 20)
    expect(list.length).toBeGreaterThan(200)
    expect(list.at(-1)!.id).toBe(`m${n - 1}`)
    expect(isFull(list)).toBe(true)
  })
})
