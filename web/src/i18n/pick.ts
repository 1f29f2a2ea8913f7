// Which language to show: the saved choice, else the browser's first Korean or English
// preference, else English. Apart from index.ts so settings (nicknames) can use it without a cycle.

export type Locale = 'en' | 'ko'

export function pickLocale(saved: string, languages: readonly string[]): Locale {
  if (saved === 'en' || saved === 'ko') return saved
  for (const l of languages) {
    const base = l.toLowerCase().split('-')[0]
    if (base === 'ko' || base === 'en') return base
  }
  return 'en'
}
