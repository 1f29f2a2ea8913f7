// Locale choice and the default nickname format.
import { describe, expect, it } from 'vitest'
import { pickLocale } from '../index'
import { randomNickname } from '../../composables/useSettings'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'

// Read from disk: the build plugin turns imported JSON into precompiled message ASTs.
const load = (l: string) => JSON.parse(readFileSync(resolve('src/i18n/locales', `${l}.json`), 'utf8'))
const en = load('en')
const ko = load('ko')

describe('pickLocale', () => {
  it.each([
    ['', ['ko-KR', 'en-US'], 'ko'],
    ['', ['fr-FR', 'en-GB'], 'en'],
    ['', ['de'], 'en'],
    ['en', ['ko-KR'], 'en'],
    ['ko', [], 'ko'],
  ])('saved=%s languages=%j -> %s', (saved, langs, expected) => expect(pickLocale(saved, langs)).toBe(expected))
})

describe('messages', () => {
  const keys = (o: object, p = ''): string[] =>
    Object.entries(o).flatMap(([k, v]) => (typeof v === 'object' ? keys(v, `${p}${k}.`) : [`${p}${k}`]))
  it('Korean has every English key', () => expect(keys(ko).sort()).toEqual(keys(en).sort()))
})

describe('randomNickname', () => {
  it('is an adjective, an animal and a 4-digit tag', () => {
    expect(randomNickname(() => 0)).toBe('Brave Otter #0000')
    expect(randomNickname()).toMatch(/^\w+ \w+ #\d{4}$/)
  })
})
