// What a room name (typed, or from an invitation link) is: the server takes 1-128 characters
// after trimming, any text. A random UUID (the dice, the shared link) is private by being
// unguessable; a hand-picked name is allowed but anyone who guesses it can walk in, so the entry
// screen says so. A name that is too long is refused here rather than cut without a word.

export const MAX_ROOM_CHARS = 128

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export interface RoomNameCheck {
  /** The name the server will use (trimmed). */
  id: string
  /** Its length in characters (Unicode scalar values, as the server counts). */
  chars: number
  problem: 'too-long' | null
  /** Not a random id: guessable. */
  named: boolean
}

export function checkRoomName(raw: string): RoomNameCheck {
  const id = raw.trim()
  const chars = [...id].length
  return {
    id,
    chars,
    problem: chars > MAX_ROOM_CHARS ? 'too-long' : null,
    named: chars > 0 && !UUID.test(id),
  }
}
