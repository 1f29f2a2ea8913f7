// i18n: Korean and English, precompiled at build time; browser language by default, choice remembered.
import { createI18n } from 'vue-i18n'
import { watch } from 'vue'
import en from './locales/en.json'
import ko from './locales/ko.json'
import { useSettings } from '../composables/useSettings'

export const LOCALES = [
  { code: 'en', label: 'English' },
  { code: 'ko', label: '한국어' },
] as const
export type Locale = (typeof LOCALES)[number]['code']

export function pickLocale(saved: string, languages: readonly string[]): Locale {
  if (saved === 'en' || saved === 'ko') return saved
  for (const l of languages) {
    const base = l.toLowerCase().split('-')[0]
    if (base === 'ko' || base === 'en') return base
  }
  return 'en'
}

export function setupI18n() {
  const settings = useSettings()
  const initial = pickLocale(settings.locale.value, navigator.languages ?? [navigator.language])
  const i18n = createI18n({
    legacy: false,
    locale: initial,
    fallbackLocale: 'en',
    messages: { en, ko },
  })
  const apply = (l: string) => {
    document.documentElement.lang = l
  }
  apply(initial)
  watch(settings.locale, (l) => {
    const next = pickLocale(l, [])
    i18n.global.locale.value = next
    apply(next)
  })
  return i18n
}
