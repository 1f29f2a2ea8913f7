// Routes: the entry screen, a room, the connection check; the seed's ?roomrequest=<id> deep link
// lands on the entry screen.
import { createRouter, createWebHistory } from 'vue-router'
import EntryView from './views/EntryView.vue'

export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', name: 'entry', component: EntryView },
    { path: '/room/:id', name: 'room', component: EntryView, props: true },
    { path: '/check', name: 'check', component: () => import('./views/CheckView.vue') },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
})
