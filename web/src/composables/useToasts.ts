// useToasts: short notices laid over the call (they never push the grid): a chat message or a
// file while the chat is closed, someone joining or leaving, "link copied". Stored as message
// keys, translated when shown, so a language switch applies to them too.
import { ref } from 'vue'

export type ToastKind = 'chat' | 'file' | 'presence' | 'link' | 'hand' | 'host' | 'trust'

export interface Toast {
  id: number
  kind: ToastKind
  key: string
  params: Record<string, string | number>
  /** Tapping the toast opens the chat drawer (where the message or file is). */
  opensChat: boolean
}

const toasts = ref<Toast[]>([])
let next = 1
const MAX = 3

function push(kind: ToastKind, key: string, params: Record<string, string | number> = {}, opts: { ms?: number; opensChat?: boolean } = {}): void {
  const toast: Toast = { id: next++, kind, key, params, opensChat: opts.opensChat === true }
  // One chat toast at a time: the newest message replaces the previous one.
  const kept = toasts.value.filter((x) => kind !== 'chat' || x.kind !== 'chat')
  toasts.value = [...kept, toast].slice(-MAX)
  setTimeout(() => dismiss(toast.id), opts.ms ?? 4000)
}

function dismiss(id: number): void {
  toasts.value = toasts.value.filter((x) => x.id !== id)
}

/** Drops the toasts that point at the chat (it has just been opened). */
function clearChat(): void {
  toasts.value = toasts.value.filter((x) => !x.opensChat)
}

export function useToasts() {
  return { toasts, push, dismiss, clearChat, clear: () => (toasts.value = []) }
}
