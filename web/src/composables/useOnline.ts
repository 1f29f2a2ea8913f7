// useOnline: whether to tell the person they are offline. navigator.onLine alone is not trusted:
// Chromium reports offline on a machine with only loopback or a LAN without a default route,
// while peerbox (often on that very LAN) is reachable. An open signalling socket proves the
// network works, so "offline" means the browser says offline AND the socket is not open.
import { computed, ref, type Ref } from 'vue'
import { useRoom } from './useRoom'

const browserOnline = ref(typeof navigator === 'undefined' ? true : navigator.onLine)
if (typeof window !== 'undefined') {
  window.addEventListener('online', () => (browserOnline.value = true))
  window.addEventListener('offline', () => (browserOnline.value = false))
}

/**
 * True unless the browser says offline and the signalling socket is not open. Before the first
 * attempt has failed (`failures` 0) the socket gets its chance: a banner that shows while the
 * first connection is still being made, then vanishes, only shifts the page under the reader.
 */
export function isOnline(browser: boolean, signal: string, failures = 1): boolean {
  return browser || signal === 'open' || (failures === 0 && signal !== 'closed')
}

export function useOnline(): Readonly<Ref<boolean>> {
  const { signalState, attempt } = useRoom()
  return computed(() => isOnline(browserOnline.value, signalState.value, attempt.value))
}
