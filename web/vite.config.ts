// Vite build for the peerbox PWA: output goes to ../pwa, which the Rust binary embeds.
import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import VueI18nPlugin from '@intlify/unplugin-vue-i18n/vite'
import { VitePWA } from 'vite-plugin-pwa'

export default defineConfig({
  plugins: [
    vue(),
    // Precompile messages so the runtime-only vue-i18n build works under a CSP without 'unsafe-eval'.
    VueI18nPlugin({
      include: [fileURLToPath(new URL('./src/i18n/locales/**', import.meta.url))],
      runtimeOnly: true,
      compositionOnly: true,
      fullInstall: false,
    }),
    VitePWA({
      registerType: 'autoUpdate',
      injectRegister: false, // registered in main.ts, where a failure (e.g. an untrusted certificate) is caught
      includeAssets: ['favicon.svg', 'icons/*.png'],
      workbox: {
        globPatterns: ['**/*.{js,css,html,svg,png,ico,webmanifest}'],
        globIgnores: ['screenshots/**'],
        navigateFallback: 'index.html',
        navigateFallbackDenylist: [/^\/ws/, /^\/\.well-known\//],
        cleanupOutdatedCaches: true,
      },
      manifest: {
        id: '/',
        name: 'peerbox',
        short_name: 'peerbox',
        description: 'Private video rooms, chat and file sharing on your own server.',
        lang: 'en',
        start_url: '/',
        scope: '/',
        display: 'standalone',
        orientation: 'any',
        theme_color: '#1f6f5c',
        background_color: '#0f1a17',
        icons: [
          { src: '/icons/icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
          { src: '/icons/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
          { src: '/icons/maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
        screenshots: [
          { src: '/screenshots/narrow.png', sizes: '390x844', type: 'image/png', form_factor: 'narrow', label: 'peerbox on a phone' },
          { src: '/screenshots/wide.png', sizes: '1366x768', type: 'image/png', form_factor: 'wide', label: 'peerbox on a desktop' },
        ],
      },
    }),
  ],
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  build: {
    outDir: '../pwa',
    emptyOutDir: true,
    target: 'es2022',
    reportCompressedSize: false,
  },
})
