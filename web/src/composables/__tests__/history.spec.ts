// Chat history for newcomers: what is offered (public messages only, the last N) and how an
// offered message is merged (in time order, once however many members send it).
import { describe, expect, it } from 'vitest'
import { historyOf, mergePast, type ChatEntry, type NoticeEntry } from '../useChat'

const msg = (id: string, ts: number, whisper = false): ChatEntry => ({
  kind: 'chat', id, from: 'a', fromName: 'Ann', text: id, ts, whisper, mine: false,
})
const notice: NoticeEntry = { kind: 'notice', id: 'n', ts: 5, event: 'joined', name: 'Bob' }

describe('chat history', () => {
  it('offers the last public messages, never whispers or notices', () => {
    const list = [msg('1', 1), notice, msg('w', 6, true), msg('2', 7), msg('3', 8)]
    expect(historyOf(list).map((m) => m.id)).toEqual(['1', '2', '3'])
    expect(historyOf(list, 2).map((m) => m.id)).toEqual(['2', '3'])
    expect(historyOf(list)[0]).not.toHaveProperty('mine')
  })

  it('merges in time order, once, and refuses whispers', () => {
    let list: (ChatEntry | NoticeEntry)[] = [msg('late', 10)]
    list = mergePast(list, msg('early', 2))
    list = mergePast(list, msg('early', 2)) // the same from another member
    list = mergePast(list, msg('mid', 5))
    list = mergePast(list, msg('secret', 3, true))
    expect(list.map((m) => m.id)).toEqual(['early', 'mid', 'late'])
    expect(list.filter((m) => m.kind === 'chat' && m.past).length).toBe(2)
  })
})
