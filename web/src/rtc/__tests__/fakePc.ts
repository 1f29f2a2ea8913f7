// A minimal fake RTCPeerConnection: just enough signalling-state machine for negotiation tests.

export class FakeChannel {
  readyState: RTCDataChannelState = 'connecting'
  binaryType = 'blob'
  bufferedAmount = 0
  bufferedAmountLowThreshold = 0
  sent: unknown[] = []
  onopen: (() => void) | null = null
  onclose: (() => void) | null = null
  onmessage: ((ev: { data: unknown }) => void) | null = null
  onbufferedamountlow: (() => void) | null = null
  peer: FakeChannel | null = null
  constructor(public label: string) {}
  send(data: unknown) {
    if (this.readyState !== 'open') throw new Error('not open')
    this.sent.push(data)
    this.peer?.onmessage?.({ data })
  }
  open() {
    this.readyState = 'open'
    this.onopen?.()
  }
  close() {
    this.readyState = 'closed'
    this.onclose?.()
  }
}

let counter = 0
const tick = () => new Promise<void>((r) => setTimeout(r, 0))

export class FakePc {
  signalingState: RTCSignalingState = 'stable'
  iceConnectionState: RTCIceConnectionState = 'new'
  connectionState: RTCPeerConnectionState = 'new'
  localDescription: RTCSessionDescriptionInit | null = null
  remoteDescription: RTCSessionDescriptionInit | null = null
  candidates: (RTCIceCandidateInit | undefined)[] = []
  transceivers: { direction: string; receiver: { track: { kind: string } } }[] = []
  tracks: MediaStreamTrack[] = []
  restarts = 0
  closed = false
  onnegotiationneeded: (() => void) | null = null
  onicecandidate: ((ev: { candidate: null }) => void) | null = null
  ontrack: (() => void) | null = null
  oniceconnectionstatechange: (() => void) | null = null
  onconnectionstatechange: (() => void) | null = null

  constructor(public config: RTCConfiguration) {}

  createDataChannel(label: string) {
    return new FakeChannel(label)
  }
  senders: { track: MediaStreamTrack | null; streamId: string; replaceTrack: (t: MediaStreamTrack | null) => Promise<void> }[] = []
  addTrack(track: MediaStreamTrack, stream?: MediaStream) {
    this.tracks.push(track)
    this.transceivers.push({ direction: 'sendrecv', receiver: { track: { kind: track.kind } } })
    const sender = {
      track: track as MediaStreamTrack | null,
      streamId: stream?.id ?? '',
      replaceTrack: async (t: MediaStreamTrack | null) => void (sender.track = t),
    }
    this.senders.push(sender)
    return sender
  }
  getConfiguration() {
    return this.config
  }
  setConfiguration(c: RTCConfiguration) {
    this.config = c
  }
  addTransceiver(kind: string, init: { direction: string }) {
    this.transceivers.push({ direction: init.direction, receiver: { track: { kind } } })
  }
  getTransceivers() {
    return this.transceivers
  }
  async setLocalDescription(desc?: RTCSessionDescriptionInit) {
    await tick()
    const type = desc?.type ?? (this.signalingState === 'have-remote-offer' ? 'answer' : 'offer')
    if (type === 'offer' && this.signalingState !== 'stable' && this.signalingState !== 'have-local-offer') {
      throw new Error(`cannot offer in ${this.signalingState}`)
    }
    if (type === 'answer' && this.signalingState !== 'have-remote-offer') throw new Error(`cannot answer in ${this.signalingState}`)
    this.localDescription = { type, sdp: `${type}-${++counter}` }
    this.signalingState = type === 'offer' ? 'have-local-offer' : 'stable'
  }
  async setRemoteDescription(desc: RTCSessionDescriptionInit) {
    await tick()
    if (desc.type === 'offer') {
      // Implicit rollback of our own offer, as browsers do for the polite peer.
      if (this.signalingState !== 'stable' && this.signalingState !== 'have-local-offer') throw new Error('bad state')
      this.signalingState = 'have-remote-offer'
    } else {
      if (this.signalingState !== 'have-local-offer') throw new Error(`answer in ${this.signalingState}`)
      this.signalingState = 'stable'
    }
    this.remoteDescription = desc
  }
  async addIceCandidate(c?: RTCIceCandidateInit) {
    this.candidates.push(c)
  }
  restartIce() {
    this.restarts++
  }
  setIce(state: RTCIceConnectionState) {
    this.iceConnectionState = state
    this.oniceconnectionstatechange?.()
  }
  close() {
    this.closed = true
  }
}
