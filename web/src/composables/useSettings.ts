// User settings kept in localStorage: display name, language, always-relay, the microphone's
// audio processing and the speaker.
import { ref, watch } from 'vue'
import { pickLocale, type Locale } from '../i18n/pick'

const KEY = 'peerbox.settings'

/** The browser's microphone processing, as getUserMedia constraints (all on by default). */
export interface AudioProcessing {
  echoCancellation: boolean
  noiseSuppression: boolean
  autoGainControl: boolean
}

interface Stored {
  audio?: Partial<AudioProcessing>
  speaker?: string
  name?: string
  locale?: string
  relay?: boolean
  /** The name is one this app made up (not typed): it follows a language switch. */
  nameAuto?: boolean
}

// Default names in the language the person reads: "Calm Otter #0420", "차분한 수달 #0420".
const WORDS = {
  en: {
    adjectives: ['Brave', 'Calm', 'Clever', 'Gentle', 'Happy', 'Lucky', 'Merry', 'Quiet', 'Swift', 'Sunny', 'Witty', 'Bold'],
    animals: ['Otter', 'Fox', 'Panda', 'Heron', 'Lynx', 'Koala', 'Robin', 'Badger', 'Dolphin', 'Falcon', 'Tiger', 'Wren'],
  },
  ko: {
    adjectives: ['용감한', '차분한', '똑똑한', '다정한', '행복한', '씩씩한', '명랑한', '조용한', '날쌘', '느긋한', '재치 있는', '당찬'],
    animals: ['수달', '여우', '판다', '두루미', '고양이', '코알라', '참새', '너구리', '돌고래', '매', '호랑이', '다람쥐'],
  },
} as const

export function randomNickname(random: () => number = Math.random, locale: Locale = 'en'): string {
  const words = WORDS[locale]
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)]!
  const tag = String(Math.floor(random() * 10000)).padStart(4, '0')
  return `${pick(words.adjectives)} ${pick(words.animals)} #${tag}`
}

function load(): Stored {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? '{}') as Stored
  } catch {
    return {}
  }
}

const stored = load()
const browserLanguages = typeof navigator === 'undefined' ? [] : (navigator.languages ?? [navigator.language])
const languageOf = (saved: string) => pickLocale(saved, browserLanguages)
const name = ref(stored.name || randomNickname(Math.random, languageOf(stored.locale ?? '')))
let nameAuto = !stored.name || stored.nameAuto === true
const locale = ref(stored.locale ?? '')
const audio = ref<AudioProcessing>({
  echoCancellation: stored.audio?.echoCancellation !== false,
  noiseSuppression: stored.audio?.noiseSuppression !== false,
  autoGainControl: stored.audio?.autoGainControl !== false,
})
/** Audio output device for the others' voices ('' = the default). */
const speaker = ref(typeof stored.speaker === 'string' ? stored.speaker : '')
const relaySaved = ref(stored.relay === true)
const relayFromUrl = typeof location !== 'undefined' && new URLSearchParams(location.search).get('relay') === '1'
const relay = ref(relaySaved.value || relayFromUrl)

function save(): void {
  try {
    const data: Stored = { name: name.value, locale: locale.value, relay: relaySaved.value, nameAuto, audio: audio.value, speaker: speaker.value }
    localStorage.setItem(KEY, JSON.stringify(data))
  } catch {
    /* private mode: settings just are not remembered */
  }
}

let renaming = false
watch(locale, (l) => {
  if (!nameAuto) return
  renaming = true
  name.value = randomNickname(Math.random, languageOf(l))
})
watch(name, () => {
  if (!renaming) nameAuto = false
  renaming = false
})
save()
watch([name, locale, relaySaved, audio, speaker], save, { flush: 'post', deep: true })
watch(relay, (v) => {
  relaySaved.value = v
})

export function useSettings() {
  return { name, locale, relay, audio, speaker }
}
