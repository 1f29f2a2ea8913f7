// fitTiles: the largest tiles that fit, for the tile counts a room really has.
import { describe, expect, it } from 'vitest'
import { fitTiles, phoneGrid } from '../tileLayout'

describe('fitTiles', () => {
  // The call stage of a 1366x768 desktop with the 360 px side panel, roughly.
  const W = 990, H = 640, GAP = 8

  it.each([
    [1, 1], [2, 1], [3, 2], [4, 2], [5, 2], [6, 2], [7, 3], [9, 3],
  ])('%i tiles on a desktop use %i columns', (n, cols) => {
    expect(fitTiles(n, W, H, GAP).cols).toBe(cols)
  })

  it('never overflows the box and keeps the aspect ratio', () => {
    for (let n = 1; n <= 12; n++) {
      const f = fitTiles(n, W, H, GAP)
      expect(f.cols * f.width + (f.cols - 1) * GAP).toBeLessThanOrEqual(W)
      expect(f.rows * f.height + (f.rows - 1) * GAP).toBeLessThanOrEqual(H)
      expect(Math.abs(f.width / f.height - 16 / 9)).toBeLessThan(0.05)
    }
  })

  it('stacks tiles in a tall narrow box', () => {
    expect(fitTiles(2, 374, 700, GAP).cols).toBe(1)
  })
})

describe('phoneGrid', () => {
  it.each([
    // cameras, screens, portrait -> columns, rows
    [1, 0, true, 'repeat(1, minmax(0, 1fr))', 'repeat(1, minmax(0, 1fr))'],
    [2, 0, true, 'repeat(1, minmax(0, 1fr))', 'repeat(2, minmax(0, 1fr))'], // stacked
    [3, 0, true, 'repeat(2, minmax(0, 1fr))', 'repeat(2, minmax(0, 1fr))'],
    [2, 1, true, 'repeat(1, minmax(0, 1fr))', 'repeat(1, minmax(0, 2fr)) repeat(2, minmax(0, 1fr))'], // the screen a band on top
    [0, 1, true, 'repeat(1, minmax(0, 1fr))', 'repeat(1, minmax(0, 2fr))'],
    [2, 0, false, 'repeat(2, minmax(0, 1fr))', 'repeat(1, minmax(0, 1fr))'],
    [2, 1, false, 'repeat(1, minmax(0, 2fr)) repeat(2, minmax(0, 1fr))', 'repeat(1, minmax(0, 1fr))'], // a band on the left
    [0, 0, true, 'repeat(1, minmax(0, 1fr))', 'repeat(1, minmax(0, 1fr))'], // alone: one empty cell
  ])('%i cameras, %i screens, portrait %s', (cams, screens, portrait, columns, rows) => {
    expect(phoneGrid(cams, screens, portrait)).toMatchObject({ columns, rows })
  })
})
