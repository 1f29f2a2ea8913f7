// useLayout: the call's layout choice, shared by the stage, the tiles' pin buttons, the people list
// and the layout toggle: `mode` (auto: the grid for small rooms, the speaker layout from five
// tiles) and the pinned tile ('' = none; a tile key: member id, or `id:screen`).
import { ref } from 'vue'
import type { LayoutMode } from '../components/speakerLayout'

const mode = ref<LayoutMode>('auto')
const pinned = ref('')

export function useLayout() {
  return {
    mode,
    pinned,
    togglePin: (key: string) => (pinned.value = pinned.value === key ? '' : key),
    /** The toggle: from the layout shown to the other one (leaving the speaker layout unpins). */
    toggleMode: (speakerShown: boolean) => {
      mode.value = speakerShown ? 'grid' : 'speaker'
      if (speakerShown) pinned.value = ''
    },
    reset: () => {
      mode.value = 'auto'
      pinned.value = ''
    },
  }
}
