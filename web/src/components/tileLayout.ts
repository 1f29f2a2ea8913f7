// tileLayout: how many columns, and how big, so that n tiles of one aspect ratio fill a box
// without scrolling. The grid centres an incomplete last row (flex-wrap), so only sizes matter.

export interface TileFit {
  cols: number
  rows: number
  width: number
  height: number
}

/** The column count that gives the largest tiles of `aspect` (width / height) in a w×h box. */
export function fitTiles(n: number, w: number, h: number, gap: number, aspect = 16 / 9): TileFit {
  const count = Math.max(1, n)
  let best: TileFit = { cols: 1, rows: count, width: 0, height: 0 }
  for (let cols = 1; cols <= count; cols++) {
    const rows = Math.ceil(count / cols)
    const cellW = (w - gap * (cols - 1)) / cols
    const cellH = (h - gap * (rows - 1)) / rows
    const width = Math.max(0, Math.min(cellW, cellH * aspect))
    if (width > best.width) best = { cols, rows, width, height: width / aspect }
  }
  return { ...best, width: Math.floor(best.width), height: Math.floor(best.height) }
}
