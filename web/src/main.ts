// Entry point: mount the app with router and i18n. The service worker registers itself via registerSW.js.
import { createApp } from 'vue'
import App from './App.vue'
import { router } from './router'
import { setupI18n } from './i18n'
import './styles/main.css'

createApp(App).use(router).use(setupI18n()).mount('#app')
