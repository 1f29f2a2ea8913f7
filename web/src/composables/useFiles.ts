// useFiles: file transfers in both directions, with progress, cancel and verified downloads; a
// toast and the unread badge when one arrives with the chat closed; a file that could go to
// nobody stays in the list and says why.
import { ref } from 'vue'
import { MAX_FILE_SIZE } from '../rtc/files'
import { useChat } from './useChat'
import { useRoom } from './useRoom'
import { useToasts } from './useToasts'

export interface Transfer {
  id: string
  peerId: string
  peerName: string
  name: string
  size: number
  bytes: number
  direction: 'in' | 'out'
  /** unsent: nobody to send it to (alone in the room, or the whisper target left). */
  status: 'active' | 'done' | 'cancelled' | 'failed' | 'unsent'
  /** When it started: the chat shows transfers between the messages. */
  ts: number
  /** Sent to everyone (one row per member), or to one member only. */
  toAll?: boolean
  url?: string
  sha256?: string
}

const transfers = ref<Transfer[]>([])
const tooBig = ref<string | null>(null)
let wired = false
// Progress arrives per 16 KiB chunk; the list is re-rendered at most every 100 ms.
const pendingBytes = new Map<string, { peerId: string; id: string; bytes: number }>()
let flushTimer: ReturnType<typeof setTimeout> | null = null

function flushProgress(): void {
  flushTimer = null
  const updates = new Map([...pendingBytes.values()].map((u) => [`${u.peerId}/${u.id}`, u.bytes]))
  pendingBytes.clear()
  transfers.value = transfers.value.map((t) => {
    const bytes = updates.get(`${t.peerId}/${t.id}`)
    return bytes === undefined || t.status !== 'active' ? t : { ...t, bytes }
  })
}

function update(peerId: string, id: string, patch: Partial<Transfer>): void {
  transfers.value = transfers.value.map((t) => (t.id === id && t.peerId === peerId ? { ...t, ...patch } : t))
}

function peerName(peerId: string): string {
  return useRoom().remotes.value.find((r) => r.id === peerId)?.name ?? ''
}

function wire(): void {
  if (wired) return
  wired = true
  const mesh = useRoom().mesh()
  mesh.on('fileIncoming', ({ peerId, meta }) => {
    const from = peerName(peerId)
    transfers.value = [...transfers.value, {
      id: meta.id, peerId, peerName: from, name: meta.name, size: meta.size, bytes: 0,
      direction: 'in', status: 'active', ts: Date.now(),
    }]
    const chat = useChat()
    if (!chat.visible.value) {
      chat.unread.value += 1
      useToasts().push('file', 'files.toast', { name: from, file: meta.name }, { opensChat: true, ms: 6000 })
    }
  })
  mesh.on('fileProgress', (p) => {
    pendingBytes.set(`${p.peerId}/${p.id}`, p)
    flushTimer ??= setTimeout(flushProgress, 100)
  })
  mesh.on('fileComplete', ({ peerId, id, blob, sha256 }) => {
    const t = transfers.value.find((x) => x.id === id && x.peerId === peerId)
    if (!t) return
    update(peerId, id, {
      status: 'done', bytes: t.size, sha256, url: t.direction === 'in' ? URL.createObjectURL(blob) : undefined,
    })
  })
  mesh.on('fileFailed', ({ peerId, id, reason }) => {
    const t = transfers.value.find((x) => x.id === id && x.peerId === peerId)
    if (t && t.status === 'active') update(peerId, id, { status: reason === 'cancelled' ? 'cancelled' : 'failed' })
  })
}

/**
 * Sends to one member (`to`, named `toName` in case they left), or to everyone when `to` is null.
 * Returns false when nothing went out (too big, or nobody to send to: that stays in the list).
 */
function send(file: File, to: string | null, toName = ''): boolean {
  if (file.size > MAX_FILE_SIZE) {
    tooBig.value = file.name
    return false
  }
  tooBig.value = null
  const started = useRoom().mesh().sendFile(file, to)
  const ts = Date.now()
  if (!started.length) {
    transfers.value = [...transfers.value, {
      id: crypto.randomUUID(), peerId: to ?? '', peerName: to ? toName : '', name: file.name, size: file.size, bytes: 0,
      direction: 'out', status: 'unsent', ts,
    }]
    return false
  }
  transfers.value = [...transfers.value, ...started.map(({ peerId, meta }) => ({
    id: meta.id, peerId, peerName: peerName(peerId), name: meta.name, size: meta.size, bytes: 0,
    direction: 'out' as const, status: 'active' as const, ts, toAll: to === null,
  }))]
  return true
}

function cancel(t: Transfer): void {
  useRoom().mesh().cancelFile(t.peerId, t.id)
  update(t.peerId, t.id, { status: 'cancelled' })
}

function dismiss(t: Transfer): void {
  if (t.url) URL.revokeObjectURL(t.url)
  transfers.value = transfers.value.filter((x) => x !== t)
}

export function useFiles() {
  wire()
  return { transfers, tooBig, send, cancel, dismiss, maxSize: MAX_FILE_SIZE }
}
