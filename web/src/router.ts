// Routes: the entry screen and a room; the seed's ?roomrequest=<id> deep link lands on the entry screen.
import { createRouter, createWebHistory } from 'vue-router'
import EntryView from './views/EntryView.vue'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', name: 'entry', component: EntryView },
    { path: '/room/:id', name: 'room', component: EntryView, props: true },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
})
