// speakerLayout: when the call shows one big tile with a strip of the others (the "speaker"
// layout), and which tile is the big one. Small rooms keep the grid; from SPEAKER_FROM tiles, or
// as soon as someone pins a tile, the big one is the pinned tile, else the active speaker, held
// for SPEAKER_HOLD_MS before a new speaker takes it, so a cough does not flip the stage.

export type LayoutMode = 'auto' | 'grid' | 'speaker'

/** From this many tiles (the own one counted) the speaker layout is on by itself. */
export const SPEAKER_FROM = 5
/** How long someone must be the active speaker before the big tile moves to them. */
export const SPEAKER_HOLD_MS = 2500

/** Whether the speaker layout is on: a pin always turns it on; otherwise the toggle, else the size. */
export function speakerLayoutOn(mode: LayoutMode, tiles: number, pinned: boolean): boolean {
  if (pinned) return true
  if (mode !== 'auto') return mode === 'speaker'
  return tiles >= SPEAKER_FROM
}

/**
 * Picks the big tile among `ids` (tile keys, screens first): the pinned one if it is there; else
 * the current one until another member has been the active speaker for `holdMs`; the first tile
 * when the current one is gone.
 */
export class FeaturedPicker {
  private current = ''
  private candidate = ''
  private candidateSince = 0

  constructor(private readonly holdMs = SPEAKER_HOLD_MS) {}

  pick(ids: readonly string[], pinned: string, speaker: string, now: number): string {
    if (pinned && ids.includes(pinned)) return pinned
    if (!ids.includes(this.current)) {
      // Nothing shown yet (or it left): take the speaker at once, else the first tile.
      this.current = speaker && ids.includes(speaker) ? speaker : ids[0] ?? ''
      this.candidate = ''
      return this.current
    }
    if (!speaker || speaker === this.current || !ids.includes(speaker)) {
      this.candidate = ''
      return this.current
    }
    if (speaker !== this.candidate) {
      this.candidate = speaker
      this.candidateSince = now
    }
    if (now - this.candidateSince >= this.holdMs) {
      this.current = speaker
      this.candidate = ''
    }
    return this.current
  }

  /** When the pick may change next without new input (to re-check then); 0: not waiting. */
  get pendingSince(): number {
    return this.candidate ? this.candidateSince : 0
  }
}
