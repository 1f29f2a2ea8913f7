// Call shortcuts, as Jitsi and Meet have them: M toggles the microphone, V the camera. Never while
// the person types (an input, a select, editable text) or with a modifier (Ctrl+V pastes).

export type Shortcut = 'mic' | 'camera'

interface KeyLike {
  key: string
  ctrlKey: boolean
  metaKey: boolean
  altKey: boolean
  repeat: boolean
  target: EventTarget | null
}

const TYPING = new Set(['INPUT', 'TEXTAREA', 'SELECT'])

export function shortcutFor(ev: KeyLike): Shortcut | null {
  if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat) return null
  const el = ev.target as { tagName?: string; isContentEditable?: boolean } | null
  if (el && (TYPING.has(el.tagName ?? '') || el.isContentEditable)) return null
  const k = ev.key.toLowerCase()
  if (k === 'm') return 'mic'
  if (k === 'v') return 'camera'
  return null
}
