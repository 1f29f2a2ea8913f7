// useVideoFit: whether a <video> fills its box (cover, cropping) or shows the whole picture
// (contain, bars). Screens and enlarged tiles always show all of it; a camera may fill its tile
// only when the crop is small (at most a quarter of one side: a 4:3 camera in a 16:9 tile), so a
// portrait phone camera on a wide tile, or a webcam on a tall phone tile, is never cut to a strip.
import { onBeforeUnmount, ref, watch, type Ref } from 'vue'

export type Fit = 'cover' | 'contain'

/** Smallest share of the picture's longer side that `cover` may keep. 4:3 in 16:9 keeps 0.75. */
export const MIN_VISIBLE = 0.74

/** The fit for a picture of vw×vh in a box of bw×bh; `whole` forces the whole picture. */
export function chooseFit(vw: number, vh: number, bw: number, bh: number, whole = false): Fit {
  if (whole || !(vw > 0 && vh > 0 && bw > 0 && bh > 0)) return 'contain'
  const v = vw / vh
  const b = bw / bh
  return Math.min(v, b) / Math.max(v, b) >= MIN_VISIBLE ? 'cover' : 'contain'
}

export function useVideoFit(video: Ref<HTMLVideoElement | null>, whole: () => boolean): Ref<Fit> {
  const fit = ref<Fit>('contain')
  const update = () => {
    const el = video.value
    fit.value = el ? chooseFit(el.videoWidth, el.videoHeight, el.clientWidth, el.clientHeight, whole()) : 'contain'
  }
  // The picture's shape changes with a camera switch or a phone turned round: `resize` says so.
  const resize = typeof ResizeObserver === 'undefined' ? null : new ResizeObserver(update)
  watch(video, (el, old) => {
    for (const ev of ['resize', 'loadedmetadata'] as const) {
      old?.removeEventListener(ev, update)
      el?.addEventListener(ev, update)
    }
    if (old) resize?.unobserve(old)
    if (el) resize?.observe(el)
    update()
  }, { immediate: true })
  watch(whole, update)
  onBeforeUnmount(() => resize?.disconnect())
  return fit
}
