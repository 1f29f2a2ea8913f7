// Mesh with a fake signalling client and fake peer connections: who connects when, logout, chat fan-out.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Mesh } from '../mesh'
import { Emitter } from '../../signal/emitter'
import type { SignalClient, SignalEvents } from '../../signal/client'
import { FakeChannel, FakePc } from './fakePc'

class FakeSignal extends Emitter<SignalEvents> {
  offers: string[] = []
  sendOffer = (to: string) => void this.offers.push(to)
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

  it('starts over on a new joined (resume gives a new session id)', () => {
    const { mesh, pcs, signal } = setup()
    signal.emit('login', { type: 'login', from: 'b', username: 'Bob', room: 'r' })
    signal.emit('joined', { sessionId: 'me2', room: 'r', members: [{ sessionId: 'b', username: 'Bob' }], iceServers: [] })
    expect(pcs[0]!.closed).toBe(true)
    expect(mesh.selfId).toBe('me2')
    expect(mesh.remotes.get('b')?.link).toBeNull()
  })
})
