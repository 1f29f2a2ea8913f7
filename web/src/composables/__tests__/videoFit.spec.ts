// When a picture may fill its tile (cover) and when it must be shown whole (contain).
import { describe, expect, it } from 'vitest'
import { chooseFit } from '../useVideoFit'

describe('chooseFit', () => {
  it.each([
    // picture, box, whole, fit
    [[640, 480], [640, 480], false, 'cover'], // same shape
    [[640, 480], [1280, 720], false, 'cover'], // 4:3 camera in a 16:9 desktop tile: a quarter of the height at most
    [[1280, 720], [640, 480], false, 'cover'],
    [[480, 640], [1280, 720], false, 'contain'], // a portrait phone camera on a desktop tile: never a strip
    [[640, 480], [370, 620], false, 'contain'], // a webcam on a tall phone tile
    [[720, 1280], [370, 620], false, 'cover'], // a phone camera on a phone tile
    [[1366, 768], [1366, 768], true, 'contain'], // a screen: always whole
    [[640, 480], [640, 480], true, 'contain'], // an enlarged (full-screen) tile
    [[0, 0], [640, 480], false, 'contain'], // no picture yet
    [[640, 480], [0, 0], false, 'contain'], // not laid out
  ] as const)('%j in %j (whole %s) -> %s', ([vw, vh], [bw, bh], whole, fit) => {
    expect(chooseFit(vw, vh, bw, bh, whole)).toBe(fit)
  })
})
