// Reconnect delays: exponential backoff with jitter, so a restarted server is not hit by all clients at once.

export interface BackoffOptions {
  baseMs: number
  maxMs: number
  random: () => number
}

/** Delay before reconnect attempt `attempt` (1-based): base * 2^(attempt-1), capped, times a factor in [0.5, 1). */
export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const exp = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(exp * (0.5 + opts.random() * 0.5))
}
