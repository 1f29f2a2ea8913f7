// How a link's statistics read to a person: one short line for the tile's tooltip and the list.
import type { LinkStats } from '../rtc/stats'

type T = (key: string, params?: Record<string, unknown>) => string

export function statsLine(s: LinkStats | null, t: T): string {
  if (!s) return t('people.noStats')
  const parts: string[] = []
  if (s.inKbps !== null) parts.push(t('people.bitrate', { in: s.inKbps, out: s.outKbps ?? 0 }))
  if (s.width) parts.push(`${s.width}×${s.height}${s.fps ? ` ${Math.round(s.fps)} fps` : ''}`)
  if (s.loss !== null) parts.push(t('people.loss', { pct: (s.loss * 100).toFixed(1) }))
  if (s.rttMs !== null) parts.push(t('people.rtt', { ms: s.rttMs }))
  if (s.path !== 'unknown') parts.push(t(`people.path.${s.path}`, { transport: s.transport.toUpperCase() || '?' }))
  return parts.join(' · ')
}
