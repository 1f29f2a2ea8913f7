// The SFU connection's recovery: a short `disconnected` is waited out, a long one or `failed` makes
// the connection again after a backoff, a connection that does not come up is tried again, and
// after the last attempt the media goes back to the mesh.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { SfuRecovery } from '../sfuRecovery'

function recovery(maxAttempts = 3) {
  const calls = { rejoin: 0, giveUp: 0, changes: [] as boolean[] }
  const r: SfuRecovery = new SfuRecovery({
    rejoin: () => calls.rejoin++,
    giveUp: () => calls.giveUp++,
    onChange: () => calls.changes.push(r.reconnecting),
    disconnectedMs: 5000,
    connectMs: 15000,
    maxAttempts,
    baseMs: 1000,
    maxMs: 8000,
    // The longest delay of each step: base * 2^(n-1), capped.
    random: () => 0.999999,
  })
  return { r, calls }
}

describe('sfu connection recovery', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('waits out a disconnected that ends within 5 s', () => {
    const { r, calls } = recovery()
    r.onState('connected')
    r.onState('disconnected')
    vi.advanceTimersByTime(4900)
    r.onState('connected')
    vi.advanceTimersByTime(60000)
    expect(calls.rejoin).toBe(0)
    expect(calls.changes).toEqual([])
  })

  it('joins again after 5 s disconnected, with the backoff, and says it is reconnecting until up', () => {
    const { r, calls } = recovery()
    r.onState('connected')
    r.onState('disconnected')
    vi.advanceTimersByTime(5000)
    expect(r.reconnecting).toBe(true)
    expect(calls.rejoin).toBe(0)
    vi.advanceTimersByTime(1000)
    expect(calls.rejoin).toBe(1)
    // The new connection comes up: no more attempts, no longer reconnecting.
    r.onState('connecting')
    r.onState('connected')
    expect(r.reconnecting).toBe(false)
    vi.advanceTimersByTime(60000)
    expect(calls.rejoin).toBe(1)
    expect(calls.changes).toEqual([true, false])
  })

  it('joins again at once (after the backoff) when failed, and again when the new one does not come up', () => {
    const { r, calls } = recovery()
    r.onState('failed')
    vi.advanceTimersByTime(1000)
    expect(calls.rejoin).toBe(1)
    // Not up within 15 s: the second attempt, 2 s later.
    vi.advanceTimersByTime(15000)
    expect(calls.rejoin).toBe(1)
    vi.advanceTimersByTime(2000)
    expect(calls.rejoin).toBe(2)
    // That one fails outright: the third, 4 s later.
    r.onState('failed')
    vi.advanceTimersByTime(3999)
    expect(calls.rejoin).toBe(2)
    vi.advanceTimersByTime(1)
    expect(calls.rejoin).toBe(3)
    expect(calls.giveUp).toBe(0)
  })

  it('gives up after the last attempt: back to the mesh, not reconnecting', () => {
    const { r, calls } = recovery(2)
    r.onState('failed')
    vi.advanceTimersByTime(1000)
    r.onState('failed')
    vi.advanceTimersByTime(2000)
    expect(calls.rejoin).toBe(2)
    r.onState('failed')
    expect(calls.giveUp).toBe(1)
    expect(r.reconnecting).toBe(false)
    vi.advanceTimersByTime(60000)
    expect(calls.rejoin).toBe(2)
  })

  it('counts attempts anew once a connection was up', () => {
    const { r, calls } = recovery(1)
    r.onState('failed')
    vi.advanceTimersByTime(1000)
    r.onState('connected')
    r.onState('failed')
    vi.advanceTimersByTime(1000)
    expect(calls.rejoin).toBe(2)
    expect(calls.giveUp).toBe(0)
  })

  it('stops waiting when stopped (the connection was ended on purpose)', () => {
    const { r, calls } = recovery()
    r.onState('failed')
    r.stop()
    vi.advanceTimersByTime(60000)
    expect(calls.rejoin).toBe(0)
    expect(r.reconnecting).toBe(false)
  })
})
