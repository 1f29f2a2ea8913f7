// FileLink over a fake channel pair: chunking, reassembly, hash check, backpressure, cancel.
import { describe, expect, it, vi } from 'vitest'
import { CHUNK_SIZE, FileLink, chunkRanges, sha256Hex, type FileChannelLike, type FileLinkHandlers } from '../files'
import { FakeChannel } from './fakePc'

type Log = { incoming: string[]; progress: [string, number][]; done: [string, Blob, string][]; failed: [string, string][] }

function handlers(log: Log): FileLinkHandlers {
  return {
    onIncoming: (m) => log.incoming.push(m.name),
    onProgress: (id, b) => log.progress.push([id, b]),
    onComplete: (id, blob, sha) => log.done.push([id, blob, sha]),
    onFailed: (id, r) => log.failed.push([id, r]),
  }
}
const newLog = (): Log => ({ incoming: [], progress: [], done: [], failed: [] })

function pair() {
  const ca = new FakeChannel('file')
  const cb = new FakeChannel('file')
  ca.peer = cb
  cb.peer = ca
  const la = newLog()
  const lb = newLog()
  const a = new FileLink(ca as unknown as FileChannelLike, handlers(la))
  const b = new FileLink(cb as unknown as FileChannelLike, handlers(lb))
  ca.open()
  cb.open()
  return { ca, cb, a, b, la, lb }
}

const bytes = (n: number) => new Uint8Array(n).map((_, i) => (i * 7) % 251)
const settle = () => new Promise((r) => setTimeout(r, 10))

describe('chunkRanges', () => {
  it.each([
    [0, []],
    [1, [[0, 1]]],
    [CHUNK_SIZE, [[0, CHUNK_SIZE]]],
    [CHUNK_SIZE + 1, [[0, CHUNK_SIZE], [CHUNK_SIZE, CHUNK_SIZE + 1]]],
  ])('size %i', (size, expected) => expect(chunkRanges(size)).toEqual(expected))
})

describe('FileLink', () => {
  it('sends a file in chunks and the receiver gets the same bytes with a verified hash', async () => {
    const p = pair()
    const data = bytes(3 * CHUNK_SIZE + 100)
    const file = new Blob([data], { type: 'application/x-test' })
    await p.a.send(file, { id: 'f1', name: 'a.bin', size: file.size, mime: file.type })
    await vi.waitFor(() => expect(p.lb.done).toHaveLength(1))
    expect(p.ca.sent.filter((d) => d instanceof ArrayBuffer)).toHaveLength(4)
    expect(p.lb.incoming).toEqual(['a.bin'])
    expect(p.lb.progress[p.lb.progress.length - 1]).toEqual(['f1', file.size])
    expect(p.lb.done).toHaveLength(1)
    const [, blob, sha] = p.lb.done[0]!
    expect(new Uint8Array(await blob.arrayBuffer())).toEqual(data)
    expect(sha).toBe(await sha256Hex(file))
    expect(p.la.done.map((d) => d[2])).toEqual([sha])
  })

  it('rejects a file whose hash does not match', async () => {
    const p = pair()
    p.cb.onmessage!({ data: JSON.stringify({ kind: 'file-meta', id: 'x', name: 'n', size: 3, mime: '' }) })
    p.cb.onmessage!({ data: new Uint8Array([1, 2, 3]).buffer })
    p.cb.onmessage!({ data: JSON.stringify({ kind: 'file-end', id: 'x', sha256: '00' }) })
    await vi.waitFor(() => expect(p.lb.failed).toEqual([['x', 'hash']]))
    expect(p.lb.done).toHaveLength(0)
  })

  it('waits for bufferedamountlow when the buffer is full', async () => {
    const p = pair()
    p.ca.bufferedAmount = 10 * 1024 * 1024
    const file = new Blob([bytes(CHUNK_SIZE * 2)])
    const sending = p.a.send(file, { id: 'f', name: 'n', size: file.size, mime: '' })
    await settle()
    expect(p.ca.sent.filter((d) => d instanceof ArrayBuffer)).toHaveLength(0)
    p.ca.bufferedAmount = 0
    p.ca.onbufferedamountlow!()
    await sending
    expect(p.ca.sent.filter((d) => d instanceof ArrayBuffer)).toHaveLength(2)
    expect(p.ca.bufferedAmountLowThreshold).toBeGreaterThan(0)
  })

  it('the receiver can cancel; the sender stops and both report cancelled', async () => {
    const p = pair()
    p.ca.bufferedAmount = 10 * 1024 * 1024
    const file = new Blob([bytes(CHUNK_SIZE * 4)])
    const sending = p.a.send(file, { id: 'f', name: 'n', size: file.size, mime: '' })
    await settle()
    expect(p.lb.incoming).toEqual(['n'])
    p.b.cancel('f')
    await sending
    expect(p.la.failed).toEqual([['f', 'cancelled']])
    expect(p.ca.sent.filter((d) => d instanceof ArrayBuffer)).toHaveLength(0)
  })

  it('the sender can cancel; the receiver drops the partial file', async () => {
    const p = pair()
    p.ca.bufferedAmount = 10 * 1024 * 1024
    const file = new Blob([bytes(CHUNK_SIZE * 4)])
    const sending = p.a.send(file, { id: 'f', name: 'n', size: file.size, mime: '' })
    await settle()
    p.a.cancel('f')
    await sending
    expect(p.lb.failed).toEqual([['f', 'cancelled']])
    expect(p.la.failed).toEqual([['f', 'cancelled']])
  })

  it('refuses metadata above the size limit', async () => {
    const p = pair()
    p.cb.onmessage!({ data: JSON.stringify({ kind: 'file-meta', id: 'big', name: 'n', size: 2 ** 40, mime: '' }) })
    await settle()
    expect(p.lb.incoming).toEqual([])
    expect(p.cb.sent).toContain(JSON.stringify({ kind: 'file-cancel', id: 'big' }))
  })
})
