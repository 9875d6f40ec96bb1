// A closed-loop load: `concurrency` slots, each sending one stream after another until the run's
// deadline (or `maxStreams`). Bounded twice: no new stream after the deadline, and whatever is still
// open `drainMs` after it is cut. Slots start spread over `rampMs`.
import { setTimeout as sleep } from 'node:timers/promises'
import type { SseClient, StreamRecord, StreamSpec } from './sse-client.js'

export interface LoadPlan {
  concurrency: number
  /** No stream starts later than this after the start. */
  durationMs: number
  /** No more than this many streams in all. */
  maxStreams?: number
  rampMs?: number
  /** After the deadline, open streams get this long to end before they are cut. */
  drainMs: number
  /**
   * The measurement window starts this long after the start (default: rampMs) and ends at the
   * deadline; throughput and percentiles count what ends (latency) or arrives (TTFT, chunks) inside it.
   */
  measureFromMs?: number
  /** false: each slot sends one stream only (a held-open load). Default true: a closed loop. */
  repeat?: boolean
  next(index: number): StreamSpec
  onRecord?(record: StreamRecord): void
}

export interface LoadRun {
  records: StreamRecord[]
  startAt: number
  windowStart: number
  windowEnd: number
  endAt: number
  concurrency: number
}

export async function runLoad(client: SseClient, plan: LoadPlan): Promise<LoadRun> {
  const startAt = performance.now()
  const rampMs = plan.rampMs ?? 0
  const deadline = startAt + plan.durationMs
  const maxStreams = plan.maxStreams ?? Number.POSITIVE_INFINITY
  const records: StreamRecord[] = []
  client.windowStart = startAt + (plan.measureFromMs ?? rampMs)
  client.windowEnd = deadline
  let started = 0

  const slot = async (index: number) => {
    if (rampMs > 0) await sleep((rampMs * index) / plan.concurrency)
    while (started < maxStreams && performance.now() < deadline) {
      const record = await client.stream(plan.next(started++))
      records.push(record)
      plan.onRecord?.(record)
      if (plan.repeat === false) break
    }
  }
  const slots = Promise.all(Array.from({ length: plan.concurrency }, (_, i) => slot(i)))

  // The deadline, then the drain, then cut whatever is still open.
  const wait = Math.max(0, deadline - performance.now())
  const timer = new Promise<void>((resolve) => setTimeout(resolve, wait + plan.drainMs).unref())
  await Promise.race([slots, timer])
  client.cutAll()
  await slots
  return { records, startAt, windowStart: client.windowStart, windowEnd: deadline, endAt: performance.now(), concurrency: plan.concurrency }
}

/** A few streams before measuring: JIT, connection setup, the workers' first SDK calls. */
export async function warmup(client: SseClient, body: string, streams = 64): Promise<void> {
  await runLoad(client, {
    concurrency: Math.min(32, streams),
    durationMs: 30_000,
    maxStreams: streams,
    drainMs: 10_000,
    next: () => ({ body })
  })
}
