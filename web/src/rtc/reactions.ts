// Quick reactions: six known emoji, sent over the chat data channel (not acknowledged: a lost one
// does not matter) and rate-limited on both ends, so a stuck key or a modified client cannot
// flood the others' screens or their screen readers.

/** The reactions a person can send; anything else that arrives is dropped. */
export const REACTIONS = ['👍', '👏', '😂', '😮', '❤️', '🎉'] as const
export type Reaction = (typeof REACTIONS)[number]
/** Each reaction's i18n key under `reactions.` (its name for screen readers and tooltips). */
export const REACTION_NAMES: Record<Reaction, string> = {
  '👍': 'thumbsUp', '👏': 'clap', '😂': 'laugh', '😮': 'surprised', '❤️': 'heart', '🎉': 'party',
}

export function isReaction(x: unknown): x is Reaction {
  return typeof x === 'string' && (REACTIONS as readonly string[]).includes(x)
}

/** At most this many reactions per window from one sender. */
export const REACTION_MAX = 4
export const REACTION_WINDOW_MS = 4000
/** The receiver allows a little more than the sender sends, so delivery jitter does not drop any. */
export const REACTION_MAX_RECEIVED = REACTION_MAX + 2

/** A sliding-window limit: `allow()` is true for at most `max` calls in any `windowMs`. */
export class RateLimit {
  private times: number[] = []
  constructor(readonly max = REACTION_MAX, readonly windowMs = REACTION_WINDOW_MS) {}

  allow(now = Date.now()): boolean {
    this.times = this.times.filter((t) => now - t < this.windowMs)
    if (this.times.length >= this.max) return false
    this.times.push(now)
    return true
  }
}
