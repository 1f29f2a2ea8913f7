// The offline banner's rule: the browser's word is overruled by a working signalling socket.
import { describe, expect, it } from 'vitest'
import { isOnline } from '../useOnline'

describe('isOnline', () => {
  it.each([
    [true, 'open', true],
    [true, 'reconnecting', true],
    [false, 'open', true], // loopback-only or LAN without a route: Chromium says offline, calls work
    [false, 'reconnecting', false],
    [false, 'connecting', false],
    [false, 'idle', false],
  ])('browser online %s, socket %s -> %s', (browser, signal, want) => {
    expect(isOnline(browser, signal)).toBe(want)
  })
})
