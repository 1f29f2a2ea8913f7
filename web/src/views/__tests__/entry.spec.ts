// Room names (typed or from a link) and the call's keyboard shortcuts.
import { describe, expect, it } from 'vitest'
import { checkRoomName } from '../roomName'
import { shortcutFor } from '../shortcuts'

describe('checkRoomName', () => {
  it.each([
    ['3f2c1a9e-1b2c-4d5e-8f90-0a1b2c3d4e5f', { problem: null, named: false, chars: 36 }],
    ['  3F2C1A9E-1B2C-4D5E-8F90-0A1B2C3D4E5F ', { problem: null, named: false }],
    ['not-a-uuid', { problem: null, named: true, chars: 10 }],
    ['우리 모임', { problem: null, named: true, chars: 5 }],
    ['x'.repeat(128), { problem: null, named: true }],
    ['x'.repeat(129), { problem: 'too-long', chars: 129 }],
    ['😀'.repeat(128), { problem: null, chars: 128 }], // counted in characters, as the server does, not UTF-16 units
    ['', { problem: null, named: false, chars: 0 }],
  ])('%j', (raw, want) => expect(checkRoomName(raw)).toMatchObject(want))

  it('trims like the server', () => expect(checkRoomName('  room  ').id).toBe('room'))
})

describe('shortcutFor', () => {
  const key = (key: string, over: Partial<Parameters<typeof shortcutFor>[0]> = {}) =>
    shortcutFor({ key, ctrlKey: false, metaKey: false, altKey: false, repeat: false, target: { tagName: 'BODY' } as unknown as EventTarget, ...over })
  it.each([
    ['m', {}, 'mic'],
    ['M', {}, 'mic'],
    ['v', {}, 'camera'],
    ['x', {}, null],
    ['v', { ctrlKey: true }, null], // paste
    ['m', { metaKey: true }, null],
    ['m', { repeat: true }, null],
    ['m', { target: { tagName: 'INPUT' } }, null], // typing a message
    ['v', { target: { tagName: 'SELECT' } }, null],
    ['m', { target: { tagName: 'DIV', isContentEditable: true } }, null],
    ['m', { target: { tagName: 'BUTTON' } }, 'mic'],
  ] as const)('%s %j -> %s', (k, over, want) => expect(key(k, over as never)).toBe(want))
})
