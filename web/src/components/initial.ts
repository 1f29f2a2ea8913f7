// The letter shown on a tile without a picture: the name's first character (a whole one: a
// surrogate pair or a Hangul syllable is never cut), upper-cased; '?' for an empty name.
export function initial(name: string): string {
  const first = [...name.trim()][0]
  return first ? first.toLocaleUpperCase() : '?'
}
