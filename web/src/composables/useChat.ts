// useChat: the message list, sending to everyone or one member, and the unread count.
import { ref } from 'vue'
import type { ChatMessage } from '../rtc/chat'
import { useRoom } from './useRoom'
import { useSettings } from './useSettings'

export interface ChatEntry extends ChatMessage {
  mine: boolean
  toName?: string
}

const messages = ref<ChatEntry[]>([])
const unread = ref(0)
const visible = ref(false)
const toast = ref<ChatEntry | null>(null)
let wired = false
let toastTimer: ReturnType<typeof setTimeout> | null = null

function wire(): void {
  if (wired) return
  wired = true
  useRoom().mesh().on('chat', (msg) => {
    const entry: ChatEntry = { ...msg, mine: false }
    messages.value = [...messages.value, entry].slice(-500)
    if (!visible.value) {
      unread.value += 1
      toast.value = entry
      if (toastTimer) clearTimeout(toastTimer)
      toastTimer = setTimeout(() => (toast.value = null), 4000)
    }
  })
}

function send(text: string, to: string | null): void {
  const body = text.trim()
  if (!body) return
  const room = useRoom()
  const msg = room.mesh().sendChat(body, useSettings().name.value, to)
  const toName = to ? room.remotes.value.find((r) => r.id === to)?.name : undefined
  messages.value = [...messages.value, { ...msg, mine: true, toName }]
}

function setVisible(v: boolean): void {
  visible.value = v
  if (v) {
    unread.value = 0
    toast.value = null
  }
}

export function useChat() {
  wire()
  return { messages, unread, toast, visible, send, setVisible, clear: () => (messages.value = []) }
}
