// Chat links and tile initials: what becomes a link (and what stays text), and the letter shown.
import { describe, expect, it } from 'vitest'
import { linkify } from '../linkify'
import { initial } from '../initial'

describe('linkify', () => {
  it.each([
    ['no links here', [{ text: 'no links here' }]],
    ['see https://example.org/a?b=1.', [{ text: 'see ' }, { text: 'https://example.org/a?b=1', href: 'https://example.org/a?b=1' }, { text: '.' }]],
    ['(www.example.org)', [{ text: '(' }, { text: 'www.example.org', href: 'https://www.example.org' }, { text: ')' }]],
    ['https://en.wikipedia.org/wiki/Foo_(bar)', [{ text: 'https://en.wikipedia.org/wiki/Foo_(bar)', href: 'https://en.wikipedia.org/wiki/Foo_(bar)' }]],
    ['http://localhost:8080/x and more', [{ text: 'http://localhost:8080/x', href: 'http://localhost:8080/x' }, { text: ' and more' }]],
    ['<b>bold</b> https://a.example/<script>', [{ text: '<b>bold</b> ' }, { text: 'https://a.example/', href: 'https://a.example/' }, { text: '<script>' }]],
    ['javascript:alert(1) data:text/html,x ftp://a.b', [{ text: 'javascript:alert(1) data:text/html,x ftp://a.b' }]],
    ['https://nodot', [{ text: 'https://nodot' }]],
    ['한국어 https://example.kr/경로 끝', [{ text: '한국어 ' }, { text: 'https://example.kr/경로', href: 'https://example.kr/경로' }, { text: ' 끝' }]],
  ])('%s', (text, parts) => {
    expect(linkify(text)).toEqual(parts)
    expect(linkify(text).map((p) => p.text).join('')).toBe(text)
  })
})

describe('initial', () => {
  it.each([
    ['ann', 'A'],
    ['  bob', 'B'],
    ['용감한 수달', '용'],
    ['😀 smile', '😀'],
    ['', '?'],
    ['   ', '?'],
  ])('%j -> %s', (name, want) => expect(initial(name)).toBe(want))
})
