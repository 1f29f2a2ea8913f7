// The SFU client's pure parts: the track map, simulcast layers, view throttling, what the
// published m-lines carry, the offer's parsing, and the frame cipher (unique IVs, drops).
import { afterEach, describe, expect, it, vi } from 'vitest'
import { publishSource, SfuLink, simulcastEncodings, tracksByMember, ViewThrottle } from '../sfuLink'
import { clearBytes, decryptFrame, deriveFrameKey, encryptFrame, IvSource } from '../frameCipher'
import { parseMessage } from '../../signal/messages'

afterEach(() => vi.useRealTimers())

describe('sfu track map', () => {
  it('groups tracks by member, by source, with the kind standing in for a missing source', () => {
    const m = tracksByMember([
      { mid: '3', kind: 'audio', from: 'a' },
      { mid: '4', kind: 'video', from: 'a' },
      { mid: '5', kind: 'video', from: 'a', source: 'screen' },
      { mid: '6', kind: 'audio', from: 'b', source: 'mic' },
      { mid: '7', kind: 'video', from: 'b', source: 'camera' },
      { mid: '8', kind: 'video', from: 'b', source: 'camera' },
    ])
    expect(m.get('a')).toEqual({ mic: '3', camera: '4', screen: '5' })
    // The first m-line of a source wins.
    expect(m.get('b')).toEqual({ mic: '6', camera: '7' })
  })

  it('ignores a source that does not match its kind', () => {
    expect(tracksByMember([{ mid: '1', kind: 'video', from: 'a', source: 'mic' }]).get('a')).toBeUndefined()
  })

  it('publishes mic and camera by kind on servers without sources', () => {
    expect(publishSource({ kind: 'audio' })).toBe('mic')
    expect(publishSource({ kind: 'video' })).toBe('camera')
    expect(publishSource({ kind: 'video', source: 'screen' })).toBe('screen')
  })
})

describe('simulcast layers', () => {
  it('scales h/m/l by 1/2/4 with their bitrate ceilings and leaves other encodings alone', () => {
    const out = simulcastEncodings([{ rid: 'h', active: true }, { rid: 'm' }, { rid: 'l' }, { rid: 'x' }])
    expect(out).toEqual([
      { rid: 'h', active: true, scaleResolutionDownBy: 1, maxBitrate: 1_200_000 },
      { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 400_000 },
      { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
      { rid: 'x' },
    ])
  })
})

describe('view throttle', () => {
  it('sends at most one sfu-view per 250 ms, only what changed, 0x0 for hidden tiles', () => {
    vi.useFakeTimers()
    let now = 0
    const sent: unknown[] = []
    const t = new ViewThrottle((v) => sent.push(v), 250, () => now)
    t.set('1', 641, 361)
    t.set('2', 320, 0)
    vi.advanceTimersByTime(0)
    expect(sent).toEqual([[{ mid: '1', width: 642, height: 362 }, { mid: '2', width: 0, height: 0 }]])
    now = 10
    t.set('1', 100, 100)
    t.set('1', 200, 100)
    vi.advanceTimersByTime(100)
    expect(sent).toHaveLength(1)
    now = 250
    vi.advanceTimersByTime(150)
    expect(sent[1]).toEqual([{ mid: '1', width: 200, height: 100 }])
    // The same size again sends nothing.
    t.set('1', 200, 100)
    now = 600
    vi.advanceTimersByTime(400)
    expect(sent).toHaveLength(2)
    // A mid no longer offered is forgotten.
    t.keep(new Set(['2']))
    t.set('2', 10, 10)
    vi.advanceTimersByTime(300)
    expect(sent[2]).toEqual([{ mid: '2', width: 10, height: 10 }])
  })

  it('sends every size again after an answer (one sent while its offer was pending is dropped by the server)', () => {
    vi.useFakeTimers()
    let now = 0
    const sent: unknown[] = []
    const t = new ViewThrottle((v) => sent.push(v), 250, () => now)
    t.set('1', 0, 0)
    t.set('2', 320, 180)
    vi.advanceTimersByTime(0)
    expect(sent).toHaveLength(1)
    now = 1000
    t.resend()
    vi.advanceTimersByTime(0)
    expect(sent[1]).toEqual([{ mid: '1', width: 0, height: 0 }, { mid: '2', width: 320, height: 180 }])
  })
})

describe('sfu messages', () => {
  it('parses an offer with and without this session\'s additions', () => {
    const m = parseMessage(JSON.stringify({
      type: 'sfu-offer',
      data: {
        sdp: 'v=0',
        publish: [{ mid: '0', kind: 'audio', source: 'mic' }, { mid: '1', kind: 'video', source: 'camera', rids: ['h', 'm', 'l'] }, { mid: '2', kind: 'video' }, { kind: 'video' }],
        tracks: [{ mid: '3', kind: 'video', from: 'a', source: 'screen' }, { mid: '4', kind: 'data', from: 'a' }, { mid: '5', kind: 'audio' }],
      },
    }))
    expect(m).toEqual({
      type: 'sfu-offer', sdp: 'v=0',
      publish: [{ mid: '0', kind: 'audio', source: 'mic' }, { mid: '1', kind: 'video', source: 'camera', rids: ['h', 'm', 'l'] }, { mid: '2', kind: 'video' }],
      tracks: [{ mid: '3', kind: 'video', from: 'a', source: 'screen' }],
    })
    expect(parseMessage('{"type":"sfu-offer","data":{}}')).toBeNull()
  })

  it('parses mode, speakers and the mode in joined', () => {
    expect(parseMessage('{"type":"mode","data":{"mode":"sfu"}}')).toEqual({ type: 'mode', mode: 'sfu' })
    expect(parseMessage('{"type":"mode","data":{"mode":"x"}}')).toBeNull()
    expect(parseMessage('{"type":"sfu-speakers","data":{"speakers":["a",3,"b"]}}')).toEqual({ type: 'sfu-speakers', speakers: ['a', 'b'] })
    expect(
      parseMessage('{"type":"sfu-paused","data":{"paused":[{"mid":"4","from":"a","source":"camera"},{"from":"b","source":"mic"},{"from":"c","source":"screen"},7]}}'),
    ).toEqual({ type: 'sfu-paused', paused: [{ from: 'a', source: 'camera' }, { from: 'c', source: 'screen' }] })
    expect(parseMessage('{"type":"sfu-paused","data":{}}')).toBeNull()
    expect(parseMessage('{"type":"joined","data":"me","mode":"sfu"}')).toMatchObject({ type: 'joined', mode: 'sfu' })
    expect(parseMessage('{"type":"joined","data":"me"}')).toMatchObject({ type: 'joined', mode: 'mesh' })
  })
})

describe('frame cipher', () => {
  it('keeps the first bytes clear, round-trips, and drops what another key or a change made', async () => {
    const key = await deriveFrameKey('secret-secret-secret-22', 'room')
    const other = await deriveFrameKey('secret-secret-secret-22', 'other-room')
    const frame = Uint8Array.from({ length: 100 }, (_, i) => i)
    const ivs = new IvSource()
    const sealed = new Uint8Array(await encryptFrame(key, frame.buffer, clearBytes('video', 'key'), ivs.next()))
    expect([...sealed.subarray(0, 10)]).toEqual([...frame.subarray(0, 10)])
    expect(sealed.length).toBe(100 + 16 + 12)
    expect([...sealed.subarray(10, 20)]).not.toEqual([...frame.subarray(10, 20)])
    expect(new Uint8Array((await decryptFrame(key, sealed.buffer, 10))!)).toEqual(frame)
    expect(await decryptFrame(other, sealed.buffer, 10)).toBeNull()
    const changed = sealed.slice()
    changed[2] ^= 1
    expect(await decryptFrame(key, changed.buffer, 10)).toBeNull()
    expect(await decryptFrame(key, frame.buffer, 10)).toBeNull()
    expect(await decryptFrame(key, new ArrayBuffer(5), 3)).toBeNull()
  })

  it('gives each frame its own IV: a per-sender prefix and a counter', () => {
    const a = new IvSource(() => new Uint8Array(8).fill(7))
    const first = a.next()
    const second = a.next()
    expect([...first]).toEqual([7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0])
    expect([...second]).toEqual([7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 1])
    expect(clearBytes('audio', undefined)).toBe(1)
    expect(clearBytes('video', 'delta')).toBe(3)
  })
})

describe('sfu link offers', () => {
  /** Just enough of an RTCPeerConnection for offers without media: it answers each one. */
  class AnsweringPc {
    remote: string[] = []
    localDescription: { type: string; sdp: string } | null = null
    connectionState = 'new'
    onicecandidate = null
    onconnectionstatechange = null
    getTransceivers() { return [] }
    async setRemoteDescription(d: { sdp: string }) { this.remote.push(d.sdp) }
    async createAnswer() { return { type: 'answer', sdp: `answer to ${this.remote.at(-1)}` } }
    async setLocalDescription(d: { type: string; sdp: string }) { this.localDescription = d }
    close() {}
  }

  it('ignores an offer with tracks before its first (one made for the connection it replaced)', async () => {
    const answers: string[] = []
    const link = new SfuLink({
      signals: { answer: (sdp) => answers.push(sdp), candidate: () => {}, view: () => {}, unpublish: () => {} },
      getStream: () => null,
      getScreen: () => null,
      pollMs: 0,
      createPeerConnection: () => new AnsweringPc() as unknown as RTCPeerConnection,
    })
    const publish = [{ mid: '0', kind: 'audio' as const, source: 'mic' as const }]
    const track = { mid: '9', kind: 'video' as const, from: 'b', source: 'camera' as const }
    await link.handleOffer({ sdp: 'old', publish, tracks: [track] })
    await link.handleOffer({ sdp: 'first', publish, tracks: [] })
    await link.handleOffer({ sdp: 'second', publish, tracks: [track] })
    expect(answers).toEqual(['answer to first', 'answer to second'])
    expect([...link.members.keys()]).toEqual(['b'])
    link.close()
  })
})
