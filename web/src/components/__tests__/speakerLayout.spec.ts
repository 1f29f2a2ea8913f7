import { describe, expect, it } from 'vitest'
import { FeaturedPicker, SPEAKER_HOLD_MS, speakerLayoutOn } from '../speakerLayout'

describe('speakerLayoutOn', () => {
  it('keeps the grid for small rooms and switches from five tiles', () => {
    expect(speakerLayoutOn('auto', 4, false)).toBe(false)
    expect(speakerLayoutOn('auto', 5, false)).toBe(true)
  })
  it('follows the toggle, and a pin always shows the big tile', () => {
    expect(speakerLayoutOn('grid', 8, false)).toBe(false)
    expect(speakerLayoutOn('speaker', 2, false)).toBe(true)
    expect(speakerLayoutOn('grid', 2, true)).toBe(true)
  })
})

describe('FeaturedPicker', () => {
  const ids = ['a', 'b', 'c']
  it('starts with the speaker, else the first tile', () => {
    expect(new FeaturedPicker().pick(ids, '', 'b', 0)).toBe('b')
    expect(new FeaturedPicker().pick(ids, '', '', 0)).toBe('a')
  })
  it('holds the big tile until a new speaker has spoken for the hold time', () => {
    const p = new FeaturedPicker()
    expect(p.pick(ids, '', 'a', 0)).toBe('a')
    expect(p.pick(ids, '', 'b', 1000)).toBe('a')
    expect(p.pick(ids, '', 'b', 1000 + SPEAKER_HOLD_MS - 1)).toBe('a')
    expect(p.pick(ids, '', 'b', 1000 + SPEAKER_HOLD_MS)).toBe('b')
  })
  it('does not flicker when speakers alternate faster than the hold', () => {
    const p = new FeaturedPicker()
    p.pick(ids, '', 'a', 0)
    for (let t = 500; t < 10_000; t += 1000) {
      expect(p.pick(ids, '', 'b', t)).toBe('a')
      expect(p.pick(ids, '', 'c', t + 500)).toBe('a')
    }
  })
  it('a brief return of the current speaker resets the wait', () => {
    const p = new FeaturedPicker()
    p.pick(ids, '', 'a', 0)
    p.pick(ids, '', 'b', 0)
    p.pick(ids, '', 'a', 2000)
    expect(p.pick(ids, '', 'b', 3000)).toBe('a')
    expect(p.pick(ids, '', 'b', 3000 + SPEAKER_HOLD_MS)).toBe('b')
  })
  it('the pinned tile wins at once; unpinned, the held one comes back', () => {
    const p = new FeaturedPicker()
    p.pick(ids, '', 'a', 0)
    expect(p.pick(ids, 'c', 'a', 10)).toBe('c')
    expect(p.pick(ids, '', 'a', 20)).toBe('a')
  })
  it('moves on at once when the big tile leaves', () => {
    const p = new FeaturedPicker()
    p.pick(ids, '', 'a', 0)
    expect(p.pick(['b', 'c'], '', 'a', 10)).toBe('b')
  })
})
