// useNow: the current time, ticking once a second while `active()` (for "trying again in 8 s",
// the knock countdown), and `clock` to show a duration as m:ss.
import { onBeforeUnmount, ref, watch, type Ref } from 'vue'

export function useNow(active: () => boolean): Ref<number> {
  const now = ref(Date.now())
  let timer: ReturnType<typeof setInterval> | null = null
  const stop = () => {
    if (timer) clearInterval(timer)
    timer = null
  }
  watch(active, (on) => {
    stop()
    now.value = Date.now()
    if (on) timer = setInterval(() => (now.value = Date.now()), 1000)
  }, { immediate: true })
  onBeforeUnmount(stop)
  return now
}

/** A duration as the countdown and the lobby show it: `m:ss` (whole seconds, rounded up; never negative). */
export function clock(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000))
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
}
