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

export interface PhoneGrid {
  /** grid-template-columns / -rows for the stage, and the rows while the chat drawer is open. */
  columns: string
  rows: string
  drawerRows: string
}

/**
 * The phone (and narrow window) grid: camera tiles fill the stage, stacked in portrait; a shared
 * screen gets a band of its own (the full width in portrait, the full height in landscape) twice
 * the size of a camera row or column, so a 16:9 screen is not squeezed into a tall camera-sized cell.
 */
export function phoneGrid(cameras: number, screens: number, portrait: boolean): PhoneGrid {
  const n = Math.max(cameras, screens ? 0 : 1)
  const side = Math.ceil(Math.sqrt(Math.max(1, n)))
  const across = n ? (portrait ? Math.ceil(n / side) : side) : 1
  const down = n ? (portrait ? side : Math.ceil(n / side)) : 0
  const band = (count: number) => (count ? `repeat(${count}, minmax(0, 2fr))` : '')
  const cells = (count: number, min = '0') => (count ? `repeat(${count}, minmax(${min}, 1fr))` : '')
  const join = (...parts: string[]) => parts.filter(Boolean).join(' ') || 'minmax(0, 1fr)'
  if (portrait) {
    return {
      columns: cells(across),
      rows: join(band(screens), cells(down)),
      drawerRows: join(screens ? `repeat(${screens}, minmax(160px, 2fr))` : '', cells(down, '120px')),
    }
  }
  return { columns: join(band(screens), cells(across)), rows: cells(Math.max(1, down)), drawerRows: cells(Math.max(1, down)) }
}
