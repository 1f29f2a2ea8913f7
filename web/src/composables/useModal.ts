// useModal: keeps a <dialog> element shown as a modal exactly while `open()` is true.
import { watch, type Ref } from 'vue'

export function useModal(dialog: Ref<HTMLDialogElement | null>, open: () => boolean): void {
  watch([dialog, open], ([el, isOpen]) => {
    if (!el) return
    if (isOpen && !el.open) el.showModal()
    else if (!isOpen && el.open) el.close()
  })
}
