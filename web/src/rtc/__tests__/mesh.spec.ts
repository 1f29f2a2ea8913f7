// Mesh with a fake signalling client and fake peer connections: who connects when, logout, chat fan-out.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Mesh } from '../mesh'
import { Emitter } from '../../signal/emitter'
import type { SignalClient, SignalEvents } from '../../signal/client'
import { FakeChannel, FakePc } from './fakePc'
import { newRoomSecret, RoomTrust } from '../trust'

class FakeSignal extends Emitter<SignalEvents> {
  offers: string[] = []
  fresh: string[] = []
  sendOffer = (to: string, _d: unknown, fresh = false) => {
    this.offers.push(to)
    if (fresh) this.fresh.push(to)
  }
  sendAnswer = vi.fn()
  sendCandidate = vi.fn()
}

function setup() {
  const signal = new FakeSignal()
  const pcs: FakePc[] = []
  const mesh = new Mesh(signal as unknown as SignalClient, {
    getStream: () => null,
    relayOnly: () => true,
    getState: () => ({ mic: true, cam: false }),
    statsEveryMs: 0,
    createPeerConnection: (c) => {
      const pc = new FakePc(c)
      pcs.push(pc)
      return pc as unknown as RTCPeerConnection
    },
  })
  signal.emit('joined', { sessionId: 'me', room: 'r', members: [{ sessionId: 'a', username: 'Ann' }], iceServers: [{ urls: 'stun:x' }] })
  return { signal, mesh, pcs }
}


beforeEach(() => vi.useFakeTimers())
afterEach(() => vi.useRealTimers())

describe('Mesh with a room secret', () => {
  it('applies a signed offer, refuses one signed for someone else, and signs its own answer', async () => {
    vi.useRealTimers()
    const signal = new FakeSignal()
    const pcs: FakePc[] = []
    const cert = { getFingerprints: () => [{ algorithm: 'sha-256', value: 'AA:BB' }] } as unknown as RTCCertificate
    const mesh = new Mesh(signal as unknown as SignalClient, {
      getStream: () => null,
      relayOnly: () => false,
      getState: () => ({ mic: true, cam: false }),
      statsEveryMs: 0,
      generateCertificate: async () => cert,
      createPeerConnection: (c) => {
        const pc = new FakePc(c)
        pcs.push(pc)
        return pc as unknown as RTCPeerConnection
      },
    })
    const secret = newRoomSecret()
    mesh.setTrust(await RoomTrust.of(secret, 'r'))
    const refused = vi.fn()
    mesh.on('refused', refused)
    signal.emit('joined', {
      sessionId: 'me', room: 'r', iceServers: [],
      members: [{ sessionId: 'a', username: 'Ann' }, { sessionId: 'b', username: 'Bob' }],
    })
    const theirs = await RoomTrust.of(secret, 'r')
    const tagA = await theirs.sign('a', ['sha-256 11:22'])
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'v=0\r\na=fingerprint:sha-256 11:22\r\n' }, auth: tagA })
    // The server hands Ann's signature to Bob's offer: refused.
    signal.emit('offer', { type: 'offer', from: 'b', description: { type: 'offer', sdp: 'v=0\r\na=fingerprint:sha-256 33:44\r\n' }, auth: tagA })
    await vi.waitFor(() => expect(refused).toHaveBeenCalledWith({ id: 'b', name: 'Bob' }))
    expect(mesh.remotes.get('a')?.trust).toBe('verified')
    expect(mesh.remotes.get('a')?.link).not.toBeNull()
    expect(mesh.remotes.get('b')?.trust).toBe('refused')
    expect(mesh.remotes.get('b')?.link).toBeNull()
    expect(pcs).toHaveLength(1)
    expect(pcs[0]!.config.certificates).toEqual([cert])
    const mine = await theirs.sign('me', ['sha-256 aa:bb'])
    await vi.waitFor(() => expect(signal.sendAnswer).toHaveBeenCalledWith('a', expect.anything(), mine))
    // Cy opened the link without its key: no signature at all. The call works, unverified.
    signal.emit('login', { type: 'login', from: 'c', username: 'Cy', room: 'r' })
    signal.emit('answer', { type: 'answer', from: 'c', description: { type: 'answer', sdp: 'v=0\r\na=fingerprint:sha-256 55:66\r\n' } })
    await vi.waitFor(() => expect(mesh.remotes.get('c')?.trust).toBe('unverified'))
    expect(mesh.remotes.get('c')?.link).not.toBeNull()
    expect(refused).toHaveBeenCalledTimes(1)
    mesh.dispose()
  })
})

describe('Mesh', () => {
  it('knows members from joined but connects to them only when their offer arrives', () => {
    const { mesh, pcs, signal } = setup()
    expect([...mesh.remotes.keys()]).toEqual(['a'])
    expect(pcs).toHaveLength(0)
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'x' } })
    expect(pcs).toHaveLength(1)
    expect(pcs[0]!.config).toMatchObject({ iceServers: [{ urls: 'stun:x' }], iceTransportPolicy: 'relay', bundlePolicy: 'max-bundle' })
  })

  it('connects to a newcomer at once and drops it on logout', () => {
    const { mesh, pcs, signal } = setup()
    signal.emit('login', { type: 'login', from: 'b', username: 'Bob', room: 'r' })
    expect(pcs).toHaveLength(1)
    expect(mesh.remotes.get('b')?.name).toBe('Bob')
    signal.emit('logout', { type: 'logout', from: 'b', username: 'Bob' })
    expect(mesh.remotes.has('b')).toBe(false)
    expect(pcs[0]!.closed).toBe(true)
  })

  it('keeps chatting with the others after one member leaves', () => {
    const { mesh, signal } = setup()
    signal.emit('login', { type: 'login', from: 'b', username: 'Bob', room: 'r' })
    signal.emit('login', { type: 'login', from: 'c', username: 'Cy', room: 'r' })
    const chatOf = (id: string) => mesh.remotes.get(id)!.link!.chatChannel as unknown as FakeChannel
    chatOf('c').open()
    signal.emit('logout', { type: 'logout', from: 'b', username: 'Bob' })
    const msg = mesh.sendChat('hi', 'Me', null)
    expect(msg.whisper).toBe(false)
    expect(chatOf('c').sent.some((d) => String(d).includes('"text":"hi"'))).toBe(true)
  })

  it('sends a whisper only to its target, and holds messages for members not yet connected', () => {
    const { mesh, signal } = setup()
    signal.emit('login', { type: 'login', from: 'b', username: 'Bob', room: 'r' })
    const chatB = mesh.remotes.get('b')!.link!.chatChannel as unknown as FakeChannel
    chatB.open()
    mesh.sendChat('psst', 'Me', 'a')
    expect(chatB.sent.some((d) => String(d).includes('psst'))).toBe(false)
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'x' } })
    const chatA = mesh.remotes.get('a')!.link!.chatChannel as unknown as FakeChannel
    chatA.open()
    const sent = chatA.sent.map((d) => JSON.parse(String(d)))
    expect(sent.find((m) => m.kind === 'chat')).toMatchObject({ text: 'psst', whisper: true })
    expect(sent.find((m) => m.kind === 'state')).toMatchObject({ cam: false, mic: true })
  })

  it('tells who came and went, but not about the members already there', () => {
    const { signal, mesh } = setup()
    const seen: string[] = []
    mesh.on('presence', (p) => seen.push(`${p.name}:${p.joined ? 'in' : 'out'}`))
    signal.emit('login', { type: 'login', from: 'b', username: 'Bob', room: 'r' })
    signal.emit('logout', { type: 'logout', from: 'b', username: 'Bob' })
    signal.emit('logout', { type: 'logout', from: 'zz', username: 'Nobody' }) // unknown: nothing
    signal.emit('logout', { type: 'logout', from: 'a', username: '' }) // from joined's list: named from it
    expect(seen).toEqual(['Bob:in', 'Bob:out', 'Ann:out'])
  })

  it('keeps a member\'s camera and shared screen apart by the stream id its state names', () => {
    class FakeStream {
      tracks: unknown[] = []
      addTrack(t: unknown) { this.tracks.push(t) }
      getTracks() { return this.tracks }
    }
    vi.stubGlobal('MediaStream', FakeStream)
    try {
      const { signal, mesh, pcs } = setup()
      signal.emit('login', { type: 'login', from: 'b', username: 'Bob', room: 'r' })
      const pc = pcs[0]! as unknown as { ontrack: (ev: unknown) => void }
      pc.ontrack({ track: { kind: 'video', id: 'cam' }, streams: [{ id: 'camStream' }] })
      pc.ontrack({ track: { kind: 'video', id: 'scr' }, streams: [{ id: 'scrStream' }] })
      const bob = mesh.remotes.get('b')!
      const chat = bob.link!.chatChannel as unknown as FakeChannel
      chat.open()
      const state = (sharing: boolean) => chat.onmessage!({
        data: JSON.stringify({ kind: 'state', id: `s${Date.now()}${sharing}`, mic: true, cam: true, sharing, screen: sharing ? 'scrStream' : undefined, ts: Date.now() }),
      })
      expect((bob.stream as unknown as FakeStream).tracks).toEqual([{ kind: 'video', id: 'cam' }])
      expect(bob.screen).toBeNull() // not sharing (yet): a stray stream is not shown as a screen
      state(true)
      expect((bob.screen as unknown as FakeStream).tracks).toEqual([{ kind: 'video', id: 'scr' }])
      expect((bob.stream as unknown as FakeStream).tracks).toEqual([{ kind: 'video', id: 'cam' }])
      vi.advanceTimersByTime(5)
      state(false)
      expect(bob.screen).toBeNull()
    } finally {
      vi.unstubAllGlobals()
    }
  })

  it('moves a running call to relay-only with new connections, and back with an ICE restart', async () => {
    vi.useRealTimers() // the fake connection's offer resolves on a real tick
    const { signal, mesh, pcs } = setup()
    signal.emit('login', { type: 'login', from: 'b', username: 'Bob', room: 'r' })
    const old = pcs[0]!
    mesh.setRelayOnly(true)
    expect(old.closed).toBe(true)
    const next = pcs[1]!
    expect(next.config.iceTransportPolicy).toBe('relay')
    next.onnegotiationneeded!()
    await vi.waitFor(() => expect(signal.fresh).toEqual(['b'])) // the other side replaces its end too
    expect(mesh.remotes.get('b')!.link!.pc).toBe(next)
    mesh.setRelayOnly(false)
    expect(pcs).toHaveLength(2)
    expect(`${next.config.iceTransportPolicy}:${next.restarts}`).toBe('all:1')
  })

  it('replaces its end of a link on a fresh offer; when both replace at once the impolite offer wins', () => {
    const { signal, mesh, pcs } = setup()
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'x' } })
    const first = pcs[0]!
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'y' }, fresh: true })
    expect(first.closed).toBe(true)
    expect(mesh.remotes.get('a')!.link!.pc).toBe(pcs[1])
    // 'me' > 'a': we are polite. Our own fresh link waits for its answer when theirs arrives: ours yields.
    const ours = pcs[1]!
    ours.signalingState = 'have-local-offer'
    ours.remoteDescription = null
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'z' }, fresh: true })
    expect(ours.closed).toBe(true)
    expect(pcs).toHaveLength(3)
  })

  it('keeps every running link when the server gives its session id back (a restart)', () => {
    const { mesh, pcs, signal } = setup()
    signal.emit('login', { type: 'login', from: 'b', username: 'Bob', room: 'r' })
    signal.emit('login', { type: 'login', from: 'c', username: 'Cy', room: 'r' })
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'x' } })
    expect(pcs).toHaveLength(3)
    const presence: string[] = []
    mesh.on('presence', (p) => presence.push(`${p.id}:${p.joined}`))
    // The restarted server has only b back yet; a and c are reconnecting too.
    signal.emit('joined', {
      sessionId: 'me', room: 'r', resumed: true, members: [{ sessionId: 'b', username: 'Bob' }], iceServers: [],
    })
    expect(pcs.every((pc) => !pc.closed)).toBe(true)
    expect([...mesh.remotes.keys()].sort()).toEqual(['a', 'b', 'c'])
    expect(mesh.remotes.get('c')?.confirmed).toBe(false)
    // c comes back: its login neither makes a new link nor an offer.
    const offers = signal.offers.length
    signal.emit('login', { type: 'login', from: 'c', username: 'Cy', room: 'r' })
    expect(pcs).toHaveLength(3)
    expect(signal.offers.length).toBe(offers)
    expect(mesh.remotes.get('c')?.confirmed).toBe(true)
    // a never comes back and its link fails: it is gone, and that is said.
    const aPc = pcs.find((pc) => mesh.remotes.get('a')?.link?.pc === (pc as unknown as RTCPeerConnection))!
    aPc.connectionState = 'failed'
    aPc.onconnectionstatechange?.()
    expect(mesh.remotes.has('a')).toBe(false)
    expect(presence).toEqual(['a:false'])
  })

  it('does not keep links on a resumed joined with another session id', () => {
    const { pcs, signal } = setup()
    signal.emit('login', { type: 'login', from: 'b', username: 'Bob', room: 'r' })
    signal.emit('joined', { sessionId: 'other', room: 'r', resumed: true, members: [], iceServers: [] })
    expect(pcs[0]!.closed).toBe(true)
  })

  it('starts over on a new joined (resume gives a new session id)', () => {
    const { mesh, pcs, signal } = setup()
    signal.emit('login', { type: 'login', from: 'b', username: 'Bob', room: 'r' })
    signal.emit('joined', { sessionId: 'me2', room: 'r', members: [{ sessionId: 'b', username: 'Bob' }], iceServers: [] })
    expect(pcs[0]!.closed).toBe(true)
    expect(mesh.selfId).toBe('me2')
    expect(mesh.remotes.get('b')?.link).toBeNull()
  })
})

describe('Mesh chat history', () => {
  const chat = (id: string, whisper = false) => ({ kind: 'chat' as const, id, from: 'x', fromName: 'X', text: id, ts: 1000 + id.length, whisper })

  it('asks a member for the newest page once its channel opens, and passes the checked page on', () => {
    const { mesh, signal } = setup()
    const pages: string[][] = []
    mesh.on('history', (msgs) => pages.push(msgs.map((m) => m.id)))
    mesh.setHistorySource(() => [])
    signal.emit('joined', { sessionId: 'me2', room: 'r', members: [{ sessionId: 'a', username: 'Ann' }], iceServers: [] })
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'x' } })
    const ch = mesh.remotes.get('a')!.link!.chatChannel as unknown as FakeChannel
    ch.open()
    const ask = ch.sent.map((d) => JSON.parse(String(d))).find((m) => m.kind === 'history-ask')
    expect(ask).toEqual({ kind: 'history-ask', id: expect.any(String) })
    const sent = ch.sent.length
    ch.onmessage?.({ data: JSON.stringify({ kind: 'history-page', id: ask.id, messages: [chat('p1'), chat('w', true)], more: false }) })
    expect(pages).toEqual([['p1']])
    expect(ch.sent.length).toBe(sent) // a page is not acknowledged
  })

  it('asks once the chat is there to take the page, when that comes after joined (the call screen is made then)', () => {
    const { mesh, signal } = setup()
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'x' } })
    const ch = mesh.remotes.get('a')!.link!.chatChannel as unknown as FakeChannel
    ch.open()
    const asks = () => ch.sent.map((d) => JSON.parse(String(d))).filter((m) => m.kind === 'history-ask')
    expect(asks()).toEqual([])
    mesh.setHistorySource(() => [])
    expect(asks()).toHaveLength(1)
    mesh.setHistorySource(() => []) // once per session
    expect(asks()).toHaveLength(1)
    // Alone in a new session: the beginning, nobody asked.
    const states: string[] = []
    mesh.on('pastState', (st) => states.push(st))
    signal.emit('joined', { sessionId: 'me2', room: 'r', members: [], iceServers: [] })
    expect(states.at(-1)).toBe('start')
  })

  it('answers an ask from what it keeps, never a whisper; nothing when history is off', () => {
    const { mesh, signal } = setup()
    let source: ReturnType<typeof chat>[] | null = [chat('a1'), chat('w', true), chat('a22')]
    mesh.setHistorySource(() => source)
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'x' } })
    const ch = mesh.remotes.get('a')!.link!.chatChannel as unknown as FakeChannel
    ch.open()
    const pages = () => ch.sent.map((d) => JSON.parse(String(d))).filter((m) => m.kind === 'history-page')
    ch.onmessage?.({ data: JSON.stringify({ kind: 'history-ask', id: 'q1' }) })
    expect(pages()).toEqual([{ kind: 'history-page', id: 'q1', messages: [chat('a1'), chat('a22')], more: false }])
    ch.onmessage?.({ data: JSON.stringify({ kind: 'history-ask', id: 'q2', before: { id: 'a22', ts: 1003 } }) })
    expect(pages()[1].messages.map((m: { id: string }) => m.id)).toEqual(['a1'])
    ch.onmessage?.({ data: JSON.stringify({ kind: 'history-ask', id: 'q3', before: 'nonsense' }) })
    expect(pages()).toHaveLength(2)
    source = null
    ch.onmessage?.({ data: JSON.stringify({ kind: 'history-ask', id: 'q4' }) })
    expect(pages()[2]).toEqual({ kind: 'history-page', id: 'q4', messages: [], more: false })
  })

  it('answers one asker a burst of asks, then no more until its limit refills', () => {
    const { mesh, signal } = setup()
    mesh.setHistorySource(() => [chat('a1')])
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'x' } })
    const ch = mesh.remotes.get('a')!.link!.chatChannel as unknown as FakeChannel
    ch.open()
    for (let i = 0; i < 20; i++) ch.onmessage?.({ data: JSON.stringify({ kind: 'history-ask', id: `q${i}` }) })
    expect(ch.sent.filter((d) => String(d).includes('history-page'))).toHaveLength(8)
  })

  it('checks history an older client pushes as past chat messages, and merges it as a page', () => {
    const { mesh, signal } = setup()
    const pages: string[][] = []
    const live = vi.fn()
    mesh.on('history', (msgs) => pages.push(msgs.map((m) => m.id)))
    mesh.on('chat', live)
    mesh.setHistorySource(() => [])
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'x' } })
    const ch = mesh.remotes.get('a')!.link!.chatChannel as unknown as FakeChannel
    ch.open()
    ch.onmessage?.({ data: JSON.stringify({ ...chat('old'), past: true }) })
    ch.onmessage?.({ data: JSON.stringify({ ...chat('odd'), past: true, whisper: true }) })
    ch.onmessage?.({ data: JSON.stringify({ ...chat('long'), past: true, fromName: 'x'.repeat(65) }) })
    expect(pages).toEqual([['old']])
    expect(live).not.toHaveBeenCalled()
  })

  it('drops anything on the channel bigger than a page, unread', () => {
    const { mesh, signal } = setup()
    const got = vi.fn()
    mesh.on('chat', got)
    signal.emit('offer', { type: 'offer', from: 'a', description: { type: 'offer', sdp: 'x' } })
    const ch = mesh.remotes.get('a')!.link!.chatChannel as unknown as FakeChannel
    ch.open()
    ch.onmessage?.({ data: JSON.stringify({ ...chat('big'), text: 'x'.repeat(70_000) }) })
    ch.onmessage?.({ data: 'null' })
    ch.onmessage?.({ data: JSON.stringify(chat('ok')) })
    expect(got.mock.calls.map(([m]) => m.id)).toEqual(['ok'])
  })
})
