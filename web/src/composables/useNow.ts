// useNow: the current time, ticking once a second while `active()` (for "trying again in 8 s").
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
