// When failures say something about a deployment rather than about the turns that met them.
//
// A 5xx (or a stream cut mid-body) before the first event may be the request's own doing: some
// content makes a provider fail every time, on every deployment. One such turn, retried by its
// client as often as it likes, must not cool a deployment down for everyone else. So a deployment
// cools down for failures only when FAILURES_TO_COOL *different* turns failed on it within
// FAILURE_WINDOW_MS with no success in between: a circuit breaker that counts distinct turns.
//
// A turn is told apart by its content (the whole upstream request: conversation, system prompt,
// tools, settings), not its request id, so a client resending the same turn counts once.
//
// The window is this replica's: failures are reported after the fact by the worker that met them,
// one by one, and a success anywhere must reset it, which across replicas would cost a Redis write
// per turn. What trips is shared: the cool-down goes into the Redis hash every replica reads
// (cooldowns.ts). With R replicas a broken deployment is found after at most R × (FAILURES_TO_COOL
// - 1) + 1 failed attempts, each of which moved its turn elsewhere unseen by the client.
//
// Not counted here, because they are evidence on their own: a 429 (the provider says so, with its
// delay) and a connection refused, reset or timed out before any answer (router.ts cools those at once).
import { createHash } from 'node:crypto'

/** Distinct turns that must fail on a deployment before it cools down. */
export const FAILURES_TO_COOL = 3
/** How long a failure counts. */
export const FAILURE_WINDOW_MS = 60_000

export class FailureWindow {
  /** Deployment id → turn fingerprint → when it last failed there. At most `threshold` entries each. */
  private readonly failures = new Map<string, Map<string, number>>()

  constructor(
    private readonly threshold = FAILURES_TO_COOL,
    private readonly windowMs = FAILURE_WINDOW_MS
  ) {}

  /** A turn failed on the deployment; true when that makes `threshold` distinct turns in the window (and it starts over). */
  failed(id: string, turn: string, now = Date.now()): boolean {
    let turns = this.failures.get(id)
    if (!turns) this.failures.set(id, (turns = new Map<string, number>()))
    for (const [key, at] of turns) if (now - at > this.windowMs) turns.delete(key)
    turns.set(turn, now)
    if (turns.size < this.threshold) return false
    this.failures.delete(id)
    return true
  }

  /** The deployment served a turn: whatever failed before says nothing about it any more. */
  succeeded(id: string): void {
    this.failures.delete(id)
  }
}

/** What tells one turn from another: its whole upstream request. */
export function turnFingerprint(request: unknown): string {
  return createHash('sha256').update(JSON.stringify(request)).digest('base64url')
}
