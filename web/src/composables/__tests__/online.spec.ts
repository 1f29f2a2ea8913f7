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

  it.each([
    [false, 'connecting', 0, true], // first connection still being made: no banner yet
    [false, 'idle', 0, true],
    [false, 'connecting', 1, false], // it failed before: the browser is right
    [false, 'closed', 0, false],
  ])('browser online %s, socket %s, failures %i -> %s', (browser, signal, failures, want) => {
    expect(isOnline(browser, signal, failures)).toBe(want)
  })
})
