// Vite build for the peerbox PWA: output goes to ../pwa, which the Rust binary embeds.
import { fileURLToPath, URL } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'
import VueI18nPlugin from '@intlify/unplugin-vue-i18n/vite'
import { VitePWA, type ManifestOptions } from 'vite-plugin-pwa'

// The install manifest in English (the default, /manifest.webmanifest) and in Korean
// (/manifest.ko.webmanifest): the app switches the <link rel="manifest"> with its language, so a
// phone's install prompt and home screen read in the person's language.
const manifest: Partial<ManifestOptions> = {
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
}
const manifestKo = {
  ...manifest,
  lang: 'ko',
  description: '내 서버에서 운영하는 비공개 영상 통화, 채팅, 파일 공유',
  screenshots: manifest.screenshots?.map((s) => ({ ...s, label: s.form_factor === 'narrow' ? '휴대폰에서 본 peerbox' : '데스크톱에서 본 peerbox' })),
}

export default defineConfig({
  plugins: [
    vue(),
    {
      name: 'peerbox-manifest-ko',
      generateBundle() {
        this.emitFile({ type: 'asset', fileName: 'manifest.ko.webmanifest', source: JSON.stringify(manifestKo) })
      },
    },
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
      manifest,
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
