// User settings kept in localStorage: display name, language, always-relay.
import { ref, watch } from 'vue'

const KEY = 'peerbox.settings'

interface Stored {
  name?: string
  locale?: string
  relay?: boolean
}

const ADJECTIVES = ['Brave', 'Calm', 'Clever', 'Gentle', 'Happy', 'Lucky', 'Merry', 'Quiet', 'Swift', 'Sunny', 'Witty', 'Bold']
const ANIMALS = ['Otter', 'Fox', 'Panda', 'Heron', 'Lynx', 'Koala', 'Robin', 'Badger', 'Dolphin', 'Falcon', 'Tiger', 'Wren']

export function randomNickname(random: () => number = Math.random): string {
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!
  const tag = String(Math.floor(random() * 10000)).padStart(4, '0')
  return `${pick(ADJECTIVES)} ${pick(ANIMALS)} #${tag}`
}

function load(): Stored {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? '{}') as Stored
  } catch {
    return {}
  }
}

const stored = load()
const name = ref(stored.name || randomNickname())
const locale = ref(stored.locale ?? '')
const relaySaved = ref(stored.relay === true)
const relayFromUrl = typeof location !== 'undefined' && new URLSearchParams(location.search).get('relay') === '1'
const relay = ref(relaySaved.value || relayFromUrl)

function save(): void {
  try {
    localStorage.setItem(KEY, JSON.stringify({ name: name.value, locale: locale.value, relay: relaySaved.value }))
  } catch {
    /* private mode: settings just are not remembered */
  }
}

save()
watch([name, locale, relaySaved], save)
watch(relay, (v) => {
  relaySaved.value = v
})

export function useSettings() {
  return { name, locale, relay }
}
