import { describe, expect, it } from 'vitest'
import { clock } from '../useNow'

describe('clock', () => {
  it('shows m:ss, rounded up, never negative', () => {
    expect(clock(92_000)).toBe('1:32')
    expect(clock(91_100)).toBe('1:32')
    expect(clock(5_000)).toBe('0:05')
    expect(clock(300_000)).toBe('5:00')
    expect(clock(-3_000)).toBe('0:00')
  })
})
