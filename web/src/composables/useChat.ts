// useChat: the message list (with "joined"/"left" notices), sending to everyone or one member,
// the unread count and toasts while the chat is not on screen. The chat so far comes from the
// members present (rtc/history.ts), never whispers, unless the host turned history off: a newcomer
// gets the last page, scrolling to the top asks for older ones; each merged in order, once.
import { ref } from 'vue'
import type { ChatMessage } from '../rtc/chat'
import { compare, KEEP_BYTES, KEEP_MAX, PAGE_BYTES, sizeOf, type Cursor, type PastState } from '../rtc/history'
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

type Entry = ChatEntry | NoticeEntry
/** Scrolling back: as the pager says, or `full` when this device keeps no more (KEEP_MAX/KEEP_BYTES). */
export type PastView = PastState | 'full'

const messages = ref<Entry[]>([])
const unread = ref(0)
const visible = ref(false)
const past = ref<PastView>('idle')
let wired = false

const add = (e: Entry) => (messages.value = bound([...messages.value, e]))
/** Whispers and notices kept besides the public messages. */
const OTHERS = 500
const isPublic = (m: Entry): m is ChatEntry => m.kind === 'chat' && !m.whisper

/**
 * Drops the oldest entries past the limits: KEEP_MAX public messages and KEEP_BYTES of them (what
 * others can be answered from), OTHERS whispers and notices.
 */
export function bound(list: Entry[]): Entry[] {
  let [count, bytes, others] = [0, 0, 0]
  let from = list.length
  while (from > 0) {
    const m = list[from - 1]!
    if (isPublic(m)) {
      bytes += sizeOf(m)
      if (++count > KEEP_MAX || bytes > KEEP_BYTES) break
    } else if (++others > OTHERS) break
    from--
  }
  return from ? list.slice(from) : list
}

/** The public messages kept, oldest first: what history asks are answered from. */
export function kept(list: Entry[]): ChatEntry[] {
  return list.filter(isPublic).sort(compare)
}

/** The oldest public message here: older pages are asked for from it (null: none yet). */
export function cursorOf(list: Entry[]): Cursor | null {
  const oldest = kept(list)[0]
  return oldest ? { id: oldest.id, ts: oldest.ts } : null
}

/** Whether another page would only push the oldest messages out again. */
export function isFull(list: Entry[]): boolean {
  const pub = kept(list)
  return pub.length >= KEEP_MAX || pub.reduce((n, m) => n + sizeOf(m), 0) > KEEP_BYTES - PAGE_BYTES
}

/** Adds a page of past messages: each once (a page may repeat what is here), in time order, never a whisper. */
export function mergePage(list: Entry[], msgs: ChatMessage[]): Entry[] {
  const ids = new Set(list.map((m) => m.id))
  let out = list
  for (const msg of msgs) {
    if (msg.whisper || ids.has(msg.id)) continue
    ids.add(msg.id)
    const entry: ChatEntry = { ...msg, past: true, mine: false }
    const at = out.findIndex((m) => compare(m, msg) > 0)
    out = at < 0 ? [...out, entry] : [...out.slice(0, at), entry, ...out.slice(at)]
  }
  return bound(out)
}

function wire(): void {
  if (wired) return
  wired = true
  const toasts = useToasts()
  const room = useRoom()
  const mesh = room.mesh()
  const historyOn = () => room.roomState.value?.history !== false
  mesh.setHistorySource(() => (historyOn() ? kept(messages.value) : null))
  mesh.on('history', (msgs) => {
    if (historyOn()) messages.value = mergePage(messages.value, msgs)
  })
  mesh.on('pastState', (state) => (past.value = state))
  mesh.on('chat', (msg) => {
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

/** Asks the members for the messages before the oldest one here (the chat was scrolled to its top). */
function loadOlder(): void {
  if (isFull(messages.value)) {
    past.value = 'full'
    return
  }
  useRoom().mesh().loadOlder(cursorOf(messages.value))
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
  const clear = () => {
    messages.value = []
    past.value = 'idle'
  }
  return { messages, unread, visible, past, send, setVisible, loadOlder, clear }
}
