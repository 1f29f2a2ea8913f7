// i18n: Korean and English, precompiled at build time; browser language by default, choice remembered.
import { createI18n } from 'vue-i18n'
import { watch } from 'vue'
import en from './locales/en.json'
import ko from './locales/ko.json'
import { useSettings } from '../composables/useSettings'
import { pickLocale } from './pick'

export const LOCALES = [
  { code: 'en', label: 'English' },
  { code: 'ko', label: '한국어' },
] as const
export { pickLocale, type Locale } from './pick'

export function setupI18n() {
  const settings = useSettings()
  const initial = pickLocale(settings.locale.value, navigator.languages ?? [navigator.language])
  const i18n = createI18n({
    legacy: false,
    locale: initial,
    fallbackLocale: 'en',
    messages: { en, ko },
  })
  // The page's language, and the install manifest in that language (the app's name and
  // description as the phone's home screen shows them).
  const apply = (l: string) => {
    document.documentElement.lang = l
    const link = document.querySelector<HTMLLinkElement>('link[rel="manifest"]')
    if (link) link.href = l === 'ko' ? '/manifest.ko.webmanifest' : '/manifest.webmanifest'
  }
  apply(initial)
  watch(settings.locale, (l) => {
    const next = pickLocale(l, [])
    i18n.global.locale.value = next
    apply(next)
  })
  return i18n
}
