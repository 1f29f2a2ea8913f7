// Entry point: mount the app with router and i18n, then register the service worker (app shell cache).
import { createApp } from 'vue'
import App from './App.vue'
import { router } from './router'
import { setupI18n } from './i18n'
import './styles/main.css'

createApp(App).use(router).use(setupI18n()).mount('#app')

// The service worker only caches the app shell; a failed registration (plain http on a LAN address,
// an untrusted certificate) just means no offline start, so it is not an error for the page.
if ('serviceWorker' in navigator && import.meta.env.PROD) {
  window.addEventListener('load', () => {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(() => {})
  })
}
