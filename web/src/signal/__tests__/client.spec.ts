// SignalClient against a fake WebSocket: message shapes, parsing, reconnect with backoff, resume, randomCheck retry.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { IceServersError, SignalClient } from '../client'
import { backoffDelay } from '../backoff'
import { parseMessage, signalUrl } from '../messages'

class FakeSocket {
  static all: FakeSocket[] = []
  sent: unknown[] = []
  onopen: (() => void) | null = null
  onclose: (() => void) | null = null
  onmessage: ((ev: { data: string }) => void) | null = null
  constructor(public url: string) {
    FakeSocket.all.push(this)
  }
  send(text: string) {
    this.sent.push(JSON.parse(text))
  }
  close() {}
  open() {
    this.onopen?.()
  }
  receive(msg: unknown) {
    this.onmessage?.({ data: JSON.stringify(msg) })
  }
  drop() {
    this.onclose?.()
  }
}

const last = () => FakeSocket.all[FakeSocket.all.length - 1]!

function client() {
  return new SignalClient({
    url: 'wss://h/ws',
    createSocket: (url) => new FakeSocket(url) as unknown as WebSocket,
    random: () => 0.5,
    baseDelayMs: 100,
    maxDelayMs: 1000,
  })
}

beforeEach(() => {
  FakeSocket.all = []
  vi.useFakeTimers()
})
afterEach(() => vi.useRealTimers())

describe('messages', () => {
  it.each([
    ['{"type":"joined","data":"me"}', { type: 'joined', sessionId: 'me', members: [], iceServers: [] }],
    ['{"type":"error","message":{"errorType":"full","errorText":"x"}}', { type: 'error', errorType: 'full', errorText: 'x' }],
    ['{"type":"randomCheckResult","data":{"result":"fail","roomrequest":"r"}}', { type: 'randomCheckResult', result: 'fail', room: 'r' }],
    ['{"type":"offer","from":"a","data":{"type":"offer","sdp":"v=0"},"username":"A"}', { type: 'offer', from: 'a', username: 'A', description: { type: 'offer', sdp: 'v=0' } }],
    ['{"type":"offer","from":"a","data":{"type":"offer","sdp":"v=0"},"fresh":true}', { type: 'offer', from: 'a', fresh: true }],
    ['{"type":"answer","from":"a","data":"v=0"}', { type: 'answer', from: 'a', description: { type: 'answer', sdp: 'v=0' } }],
    ['{"type":"logout","from":"a","data":{"username":"A","sessionId":"a"}}', { type: 'logout', from: 'a', username: 'A' }],
    // Host extensions.
    ['{"type":"joined","data":"me","state":{"host":"h","locked":true,"lobby":false,"password":true,"history":false}}',
      { type: 'joined', state: { host: 'h', locked: true, lobby: false, password: true, history: false } }],
    ['{"type":"roomState","data":{"host":"h","locked":"yes"}}', { type: 'roomState', state: { host: 'h', locked: false, lobby: false, password: false, history: true } }],
    ['{"type":"lobby","data":[{"sessionId":"k","username":"Cy"},{"username":"no id"}]}', { type: 'lobby', waiting: [{ sessionId: 'k', username: 'Cy' }] }],
    ['{"type":"knocking","data":{"roomrequest":"r"}}', { type: 'knocking', room: 'r' }],
    ['{"type":"knocking","data":{"roomrequest":"r","waitSecs":90.5}}', { type: 'knocking', room: 'r', waitSecs: 90.5 }],
    ['{"type":"lobby","data":[{"sessionId":"k","username":"Cy","waitedSecs":12.4},{"sessionId":"j","username":"Jo","waitedSecs":-1}]}',
      { type: 'lobby', waiting: [{ sessionId: 'k', username: 'Cy', waitedSecs: 12.4 }, { sessionId: 'j', username: 'Jo' }] }],
    ['{"type":"askMute","from":"h","data":{"kind":"video"}}', { type: 'askMute', from: 'h', kind: 'video' }],
    ['{"type":"ended","from":"h"}', { type: 'ended', from: 'h' }],
  ])('parses %s', (text, expected) => {
    expect(parseMessage(text)).toMatchObject(expected)
  })

  it.each([
    ['{"type":"iceServers","data":[{"urls":["stun:h:3478"]},{"urls":"turn:h:3478?transport=udp","username":"u","credential":"c"}]}',
      [{ urls: ['stun:h:3478'] }, { urls: ['turn:h:3478?transport=udp'], username: 'u', credential: 'c' }]],
    ['{"type":"iceServers","data":[{"urls":[]},{"nope":1},"x",{"urls":["stun:h"],"username":5}]}', [{ urls: ['stun:h'] }]],
  ])('parses iceServers %s', (text, iceServers) => {
    expect(parseMessage(text)).toEqual({ type: 'iceServers', iceServers })
  })

  it.each(['not json', '[]', '{"type":"nope"}', '{"type":"offer","data":{}}', '{"type":"joined"}', '{"type":"iceServers","data":{}}',
  '{"type":"roomState","data":{}}', '{"type":"lobby","data":{}}', '{"type":"askMute","from":"h","data":{"kind":"screen"}}'])(
    'ignores %s', (text) => expect(parseMessage(text)).toBeNull(),
  )

  it('builds the socket URL from the page location', () => {
    expect(signalUrl({ protocol: 'https:', host: 'box:8443' })).toBe('wss://box:8443/ws')
    expect(signalUrl({ protocol: 'http:', host: '127.0.0.1:8080' })).toBe('ws://127.0.0.1:8080/ws')
  })
})

describe('SignalClient', () => {
  it('logs in on open and sends relays with username beside data on offers', () => {
    const c = client()
    c.login('room1', 'Ann')
    c.connect()
    last().open()
    expect(last().sent[0]).toEqual({ type: 'login', data: { roomrequest: 'room1', username: 'Ann' } })
    c.sendOffer('b', { type: 'offer', sdp: 'v=0' })
    c.sendCandidate('b', { candidate: 'c', sdpMid: '0' })
    expect(last().sent[1]).toEqual({ type: 'offer', to: 'b', data: { type: 'offer', sdp: 'v=0' }, username: 'Ann' })
    expect(last().sent[2]).toEqual({ type: 'candidate', to: 'b', data: { candidate: 'c', sdpMid: '0' } })
    c.sendOffer('b', { type: 'offer', sdp: 'v=1' }, true) // a replacement connection's first offer
    expect(last().sent[3]).toEqual({ type: 'offer', to: 'b', data: { type: 'offer', sdp: 'v=1' }, username: 'Ann', fresh: true })
  })

  it('sends a room password with every login (reconnects too) and the host\'s requests', () => {
    const c = client()
    c.login('room1', 'Ann', 'pw')
    c.connect()
    last().open()
    expect(last().sent[0]).toEqual({ type: 'login', data: { roomrequest: 'room1', username: 'Ann', password: 'pw' } })
    c.setRoom({ locked: true, password: 'new' })
    c.hostAction('remove', 'b')
    c.askMute('b', 'audio')
    c.endCall()
    expect(last().sent.slice(1)).toEqual([
      { type: 'roomSettings', data: { locked: true, password: 'new' } },
      { type: 'remove', to: 'b' },
      { type: 'askMute', to: 'b', data: { kind: 'audio' } },
      { type: 'endCall' },
    ])
    last().drop()
    vi.advanceTimersByTime(100)
    last().open()
    expect(last().sent[0]).toEqual({ type: 'login', data: { roomrequest: 'room1', username: 'Ann', password: 'new' } })
  })

  it('uses [] when joined has no iceServers', () => {
    const c = client()
    const joined = vi.fn()
    c.on('joined', joined)
    c.connect()
    last().open()
    last().receive({ type: 'joined', data: 'me' })
    expect(joined).toHaveBeenCalledWith(expect.objectContaining({ sessionId: 'me', iceServers: [], members: [] }))
  })

  it('reconnects with growing delays and resumes with the last token', () => {
    const c = client()
    const states: string[] = []
    c.on('state', (s) => states.push(`${s.state}:${s.attempt}`))
    c.login('room1', 'Ann')
    c.connect()
    last().open()
    last().receive({ type: 'joined', data: 'old-id', resumeToken: 'tok', members: [] })
    last().drop()
    expect(FakeSocket.all).toHaveLength(1)
    vi.advanceTimersByTime(74) // attempt 1: 100ms * 0.75
    expect(FakeSocket.all).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.all).toHaveLength(2)
    last().drop() // attempt 2: 200ms * 0.75
    vi.advanceTimersByTime(149)
    expect(FakeSocket.all).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(FakeSocket.all).toHaveLength(3)
    last().open()
    expect(last().sent[0]).toEqual({
      type: 'login',
      data: { roomrequest: 'room1', username: 'Ann', resume: { sessionId: 'old-id', token: 'tok' } },
    })
    expect(states).toContain('reconnecting:2')
    expect(states[states.length - 1]).toBe('open:0')
  })

  it('does not reconnect after close()', () => {
    const c = client()
    c.connect()
    last().open()
    c.close()
    last().drop()
    vi.advanceTimersByTime(10000)
    expect(FakeSocket.all).toHaveLength(1)
  })

  it('retries randomCheck until the server says ok', async () => {
    const c = client()
    c.connect()
    const ids = ['a', 'b', 'c']
    const p = c.randomRoom(() => ids.shift()!)
    last().open()
    expect(last().sent).toEqual([{ type: 'randomCheck', data: 'a' }])
    last().receive({ type: 'randomCheckResult', data: { result: 'fail', roomrequest: 'a' } })
    expect(last().sent[1]).toEqual({ type: 'randomCheck', data: 'b' })
    last().receive({ type: 'randomCheckResult', data: { result: 'ok', roomrequest: 'b' } })
    await expect(p).resolves.toBe('b')
  })

  it('asks for ICE servers without logging in (queued until the socket opens)', async () => {
    const c = client()
    c.connect()
    const p = c.iceServers()
    last().open()
    expect(last().sent).toEqual([{ type: 'iceServers' }])
    last().receive({ type: 'iceServers', data: [{ urls: ['turn:h:3478?transport=tcp'], username: 'u', credential: 'c' }] })
    await expect(p).resolves.toEqual([{ urls: ['turn:h:3478?transport=tcp'], username: 'u', credential: 'c' }])
  })

  it.each([
    ['rate-limited', 'rate-limited'],
    ['bad-request', 'unsupported'], // a server from before the request existed
  ])('gives up on ICE servers after error %s', async (errorType, reason) => {
    const c = client()
    c.connect()
    last().open()
    const p = c.iceServers()
    last().receive({ type: 'error', message: { errorType, errorText: 'x' } })
    await expect(p).rejects.toEqual(new IceServersError(reason as 'rate-limited'))
  })

  it('gives up on ICE servers when nothing answers', async () => {
    const c = client()
    c.connect()
    last().open()
    const p = c.iceServers(3000)
    vi.advanceTimersByTime(3000)
    await expect(p).rejects.toMatchObject({ reason: 'timeout' })
  })

  it('backs off for longer after too-many-connections, says so, and recovers', () => {
    const c = client()
    const states: { state: string; refused?: boolean; retryInMs?: number }[] = []
    c.on('state', (s) => states.push(s))
    c.connect()
    // The server accepts the upgrade, says no and closes: three times in a row.
    for (const wait of [4000, 8000, 16000]) { // the default base is 4 s; random() 0.5 gives 0.75 of it
      last().open()
      last().receive({ type: 'error', message: { errorType: 'too-many-connections', errorText: 'x' } })
      last().drop()
      expect(states[states.length - 1]).toMatchObject({ state: 'reconnecting', refused: true, retryInMs: wait * 0.75 })
      const before = FakeSocket.all.length
      vi.advanceTimersByTime(wait * 0.75 - 1)
      expect(FakeSocket.all).toHaveLength(before)
      vi.advanceTimersByTime(1)
      expect(FakeSocket.all).toHaveLength(before + 1)
    }
    // Let in: a normal drop later waits the normal (short) time again.
    last().open()
    last().receive({ type: 'randomCheckResult', data: { result: 'ok', roomrequest: 'r' } })
    last().drop()
    expect(states[states.length - 1]).toMatchObject({ state: 'reconnecting', refused: false, retryInMs: 75 })
  })

  it('reports server errors with their errorType', () => {
    const c = client()
    const err = vi.fn()
    c.on('error', err)
    c.connect()
    last().open()
    last().receive({ type: 'error', message: { errorType: 'full', errorText: 'This room is full' } })
    expect(err).toHaveBeenCalledWith({ type: 'error', errorType: 'full', errorText: 'This room is full' })
  })
})

describe('backoffDelay', () => {
  it('doubles and caps', () => {
    const o = { baseMs: 500, maxMs: 4000, random: () => 1 }
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(a, o))).toEqual([500, 1000, 2000, 4000, 4000])
  })
})
