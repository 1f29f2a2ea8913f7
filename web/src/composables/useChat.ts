// useChat: the message list (with "joined"/"left" notices), sending to everyone or one member,
// the unread count and toasts while the chat is not on screen. A newcomer gets the chat so far
// from those present (the last HISTORY messages, never whispers, unless the host turned it off),
// merged in order and once each however many members send it.
import { ref } from 'vue'
import type { ChatMessage } from '../rtc/chat'
import { useRoom } from './useRoom'
import { useSettings } from './useSettings'
import { useToasts } from './useToasts'

export interface ChatEntry extends ChatMessage {
  mine: boolean
  toName?: string
}

/** Someone came or went: shown in the list between messages. */
export interface NoticeEntry {
  kind: 'notice'
  id: string
  ts: number
  event: 'joined' | 'left'
  name: string
}

const messages = ref<(ChatEntry | NoticeEntry)[]>([])
const unread = ref(0)
const visible = ref(false)
let wired = false

const add = (e: ChatEntry | NoticeEntry) => (messages.value = [...messages.value, e].slice(-500))
/** Messages offered to a newcomer. */
export const HISTORY = 50

/** The last public messages, as offered to a newcomer. */
export function historyOf(list: (ChatEntry | NoticeEntry)[], n = HISTORY): ChatMessage[] {
  return list
    .filter((m): m is ChatEntry => m.kind === 'chat' && !m.whisper)
    .slice(-n)
    .map(({ kind, id, from, fromName, text, ts, whisper }) => ({ kind, id, from, fromName, text, ts, whisper }))
}

/** Adds an offered past message unless it is here already (each member present sends the same ones). */
export function mergePast(list: (ChatEntry | NoticeEntry)[], msg: ChatMessage): (ChatEntry | NoticeEntry)[] {
  if (msg.whisper || list.some((m) => m.id === msg.id)) return list
  const entry: ChatEntry = { ...msg, past: true, mine: false }
  const at = list.findIndex((m) => m.ts > msg.ts)
  const out = at < 0 ? [...list, entry] : [...list.slice(0, at), entry, ...list.slice(at)]
  return out.slice(-500)
}

function wire(): void {
  if (wired) return
  wired = true
  const toasts = useToasts()
  const room = useRoom()
  const mesh = room.mesh()
  mesh.historyOffer = () => (room.roomState.value?.history === false ? [] : historyOf(messages.value))
  mesh.on('chat', (msg) => {
    if (msg.past) {
      if (room.roomState.value?.history !== false) messages.value = mergePast(messages.value, msg)
      return
    }
    if (messages.value.some((m) => m.id === msg.id)) return
    const entry: ChatEntry = { ...msg, mine: false }
    add(entry)
    if (!visible.value) {
      unread.value += 1
      toasts.push('chat', 'chat.toast', { name: entry.fromName, text: entry.text }, { opensChat: true })
    }
  })
  mesh.on('hand', ({ name }) => toasts.push('hand', 'people.handRaised', { name }, { ms: 6000 }))
  mesh.on('presence', ({ id, name, joined }) => {
    const event = joined ? 'joined' : 'left'
    add({ kind: 'notice', id: `${id}:${event}:${Date.now()}`, ts: Date.now(), event, name })
    toasts.push('presence', `chat.${event}`, { name })
  })
}

function send(text: string, to: string | null): void {
  const body = text.trim()
  if (!body) return
  const room = useRoom()
  const msg = room.mesh().sendChat(body, useSettings().name.value, to)
  const toName = to ? room.remotes.value.find((r) => r.id === to)?.name : undefined
  add({ ...msg, mine: true, toName })
}

function setVisible(v: boolean): void {
  visible.value = v
  if (v) {
    unread.value = 0
    useToasts().clearChat()
  }
}

export function useChat() {
  wire()
  return { messages, unread, visible, send, setVisible, clear: () => (messages.value = []) }
}
