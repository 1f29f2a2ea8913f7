// Perfect negotiation with fake peer connections: roles, glare, candidate queueing, ICE restart, recvonly.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { PeerLink, type PeerSignals } from '../peerLink'
import { FakePc } from './fakePc'
import type { SessionDescription } from '../../signal/messages'

type Sent = { kind: 'offer' | 'answer' | 'candidate'; payload: unknown }

function link(selfId: string, remoteId: string, stream: MediaStream | null = null) {
  const sent: Sent[] = []
  const signals: PeerSignals = {
    offer: (d) => sent.push({ kind: 'offer', payload: d }),
    answer: (d) => sent.push({ kind: 'answer', payload: d }),
    candidate: (c) => sent.push({ kind: 'candidate', payload: c }),
  }
  let pc!: FakePc
  const l = new PeerLink({
    selfId, remoteId, config: {}, signals, stream,
    createPeerConnection: (c) => (pc = new FakePc(c)) as unknown as RTCPeerConnection,
  })
  return { l, pc, sent }
}

const settle = () => new Promise((r) => setTimeout(r, 20))

afterEach(() => vi.useRealTimers())

describe('PeerLink', () => {
  it('is polite when its own id is greater', () => {
    expect(link('b', 'a').l.polite).toBe(true)
    expect(link('a', 'b').l.polite).toBe(false)
  })

  it('offers on negotiationneeded and answers an offer', async () => {
    const a = link('a', 'b')
    a.pc.onnegotiationneeded!()
    await vi.waitFor(() => expect(a.sent[0]).toMatchObject({ kind: 'offer', payload: { type: 'offer' } }))
    const b = link('b', 'a')
    await b.l.handleDescription(a.sent[0]!.payload as SessionDescription)
    expect(b.sent[0]).toMatchObject({ kind: 'answer', payload: { type: 'answer' } })
    await a.l.handleDescription(b.sent[0]!.payload as SessionDescription)
    expect(a.pc.signalingState).toBe('stable')
    expect(b.pc.signalingState).toBe('stable')
  })

  it('resolves glare: the impolite side ignores, the polite side yields', async () => {
    const imp = link('a', 'b')
    const pol = link('b', 'a')
    imp.pc.onnegotiationneeded!()
    pol.pc.onnegotiationneeded!()
    await vi.waitFor(() => {
      expect(imp.sent.some((x) => x.kind === 'offer')).toBe(true)
      expect(pol.sent.some((x) => x.kind === 'offer')).toBe(true)
    })
    const impOffer = imp.sent.find((s) => s.kind === 'offer')!.payload as SessionDescription
    const polOffer = pol.sent.find((s) => s.kind === 'offer')!.payload as SessionDescription
    // Both offers cross on the wire.
    await imp.l.handleDescription(polOffer)
    expect(imp.l.ignoreOffer).toBe(true)
    expect(imp.pc.signalingState).toBe('have-local-offer')
    await pol.l.handleDescription(impOffer)
    expect(pol.l.ignoreOffer).toBe(false)
    const answer = pol.sent.find((s) => s.kind === 'answer')!.payload as SessionDescription
    await imp.l.handleDescription(answer)
    expect(imp.pc.signalingState).toBe('stable')
    expect(pol.pc.signalingState).toBe('stable')
  })

  it('ignores candidate errors for an ignored offer and queues early candidates', async () => {
    const b = link('b', 'a')
    await b.l.handleCandidate({ candidate: 'c1', sdpMid: '0' })
    expect(b.pc.candidates).toHaveLength(0)
    await b.l.handleDescription({ type: 'offer', sdp: 'x' })
    expect(b.pc.candidates).toEqual([{ candidate: 'c1', sdpMid: '0' }])
    await b.l.handleCandidate({ candidate: 'c2', sdpMid: '0' })
    expect(b.pc.candidates).toHaveLength(2)
  })

  it('adds recvonly transceivers when there is no local media', () => {
    const a = link('a', 'b', null)
    a.l.start()
    expect(a.pc.transceivers.map((t) => `${t.receiver.track.kind}:${t.direction}`)).toEqual(['audio:recvonly', 'video:recvonly'])
  })

  it('adds local tracks when there are some', () => {
    const track = (kind: string) => ({ kind }) as MediaStreamTrack
    const stream = { getTracks: () => [track('audio'), track('video')] } as unknown as MediaStream
    const a = link('a', 'b', stream)
    a.l.start()
    expect(a.pc.tracks).toHaveLength(2)
    expect(a.pc.transceivers.every((t) => t.direction === 'sendrecv')).toBe(true)
  })

  it('sends a shared screen as a stream of its own, and reuses its senders for the next share', async () => {
    const track = (kind: string, id: string) => ({ kind, id }) as unknown as MediaStreamTrack
    const stream = (id: string, ...tracks: MediaStreamTrack[]) => ({ id, getTracks: () => tracks }) as unknown as MediaStream
    const cam = stream('cam', track('audio', 'mic'), track('video', 'cam'))
    const a = link('a', 'b', cam)
    a.l.start()
    await a.l.setScreen(stream('scr', track('video', 'screen1'), track('audio', 'tab')))
    expect(a.pc.senders.map((s) => `${s.streamId}:${s.track?.id}`)).toEqual(['cam:mic', 'cam:cam', 'scr:screen1', 'scr:tab'])
    await a.l.setScreen(null)
    expect(a.pc.senders.map((s) => s.track?.id ?? null)).toEqual(['mic', 'cam', null, null])
    await a.l.setScreen(stream('scr2', track('video', 'screen2')))
    // No new m-lines: the video sender gets the new screen, the audio one stays empty.
    expect(a.pc.senders.map((s) => s.track?.id ?? null)).toEqual(['mic', 'cam', 'screen2', null])
  })

  it('attaches a screen that was shared before the link started', () => {
    const scr = { id: 'scr', getTracks: () => [{ kind: 'video', id: 's' }] } as unknown as MediaStream
    let pc!: FakePc
    const l = new PeerLink({
      selfId: 'a', remoteId: 'b', config: {}, stream: null, screen: scr,
      signals: { offer: () => {}, answer: () => {}, candidate: () => {} },
      createPeerConnection: (c) => (pc = new FakePc(c)) as unknown as RTCPeerConnection,
    })
    l.start()
    expect(pc.senders.map((s) => s.streamId)).toEqual(['scr'])
  })

  it('switches to relay-only (and back) at once with an ICE restart', () => {
    const a = link('a', 'b')
    a.l.setRelayOnly(true)
    expect(a.pc.config.iceTransportPolicy).toBe('relay')
    expect(a.pc.restarts).toBe(1)
    a.l.setRelayOnly(true)
    expect(a.pc.restarts).toBe(1) // no change, no restart
    a.l.setRelayOnly(false)
    expect(a.pc.config.iceTransportPolicy).toBe('all')
    expect(a.pc.restarts).toBe(2)
  })

  it('restarts ICE on failed, and after 5 s of disconnected', () => {
    vi.useFakeTimers()
    const a = link('a', 'b')
    a.pc.setIce('failed')
    expect(a.pc.restarts).toBe(1)
    a.pc.setIce('disconnected')
    vi.advanceTimersByTime(4999)
    expect(a.pc.restarts).toBe(1)
    vi.advanceTimersByTime(1)
    expect(a.pc.restarts).toBe(2)
    a.pc.setIce('disconnected')
    a.pc.setIce('connected')
    vi.advanceTimersByTime(6000)
    expect(a.pc.restarts).toBe(2)
  })

  it('sends nothing after close', async () => {
    const a = link('a', 'b')
    a.l.close()
    a.pc.onnegotiationneeded!()
    await settle()
    expect(a.sent).toHaveLength(0)
    expect(a.pc.closed).toBe(true)
  })
})
