// Errors that end a knock at a lobby which knocking again may fix (the entry screen offers it).
export const KNOCK_ENDED: ReadonlySet<string> = new Set(['declined', 'lobby-timeout'])
