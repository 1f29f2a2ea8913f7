// One-off: redraws public/screenshots/narrow.png (390x844) and wide.png (1366x768), the
// manifest's screenshots (vite.config.ts), from the real app in a three-person call, at
// deviceScaleFactor 1 so the PNGs have exactly the declared sizes. Uses the e2e harness:
//   cd tests/e2e && npm ci && cd ../.. && cargo build --release
//   unshare -n sh -c 'ip link set lo up && node web/scripts/manifest-screenshots.mjs'
// Afterwards rebuild the web client and the binary (the PNGs are embedded).

import { fileURLToPath } from 'node:url'
import { startPeerbox } from '../../tests/e2e/lib/server.mjs'
import { launchBrowser, newPerson, PHONE, DESKTOP } from '../../tests/e2e/lib/browser.mjs'
import { startCall, sleep } from '../../tests/e2e/lib/app.mjs'

const out = (name) => fileURLToPath(new URL(`../public/screenshots/${name}`, import.meta.url))

const server = await startPeerbox({ name: 'manifest-shots' })
const browser = await launchBrowser()
try {
  const wide = await newPerson(browser, 'Mina', DESKTOP)
  const narrow = await newPerson(browser, 'Joon', { ...PHONE, deviceScaleFactor: 1 })
  const third = await newPerson(browser, 'Sofia', DESKTOP)
  await startCall(server.url, [wide, narrow, third])
  await sleep(1500)
  await narrow.page.screenshot({ path: out('narrow.png'), animations: 'disabled' })
  await wide.page.screenshot({ path: out('wide.png'), animations: 'disabled' })
  for (const p of [wide, narrow, third]) await p.close()
} finally {
  await browser.close()
  await server.stop()
}
