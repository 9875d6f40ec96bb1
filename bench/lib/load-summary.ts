// Figures of a load run: throughput inside the measurement window, latency percentiles of the
// streams started inside it, and every way a stream ended.
import type { LoadRun } from './load.js'
import type { StreamRecord } from './sse-client.js'
import { countBy, summarize, type Summary } from './stats.js'

export interface Outcomes {
  started: number
  done: number
  /** error events by code */
  errors: Record<string, number>
  /** non-200 answers by code */
  refused: Record<string, number>
  /** ended without a terminal event */
  lost: number
  /** client deadline passed */
  timeouts: number
  /** connection errors by code */
  failed: Record<string, number>
  /** still open when the run ended (not a failure) */
  cut: number
}

export interface LoadFigures {
  windowSec: number
  reqPerSec: number
  chunksPerSec: number
  /** Send → end of stream, done streams. */
  latencyMs: Summary
  /** Send → first chunk. */
  ttftMs: Summary
  chunksPerStream: Summary
  outcomes: Outcomes
}

export function outcomesOf(records: readonly StreamRecord[]): Outcomes {
  const of = (t: StreamRecord['terminal']) => records.filter((r) => r.terminal === t)
  return {
    started: records.length,
    done: of('done').length,
    errors: countBy(of('error'), (r) => r.code),
    refused: countBy(of('refused'), (r) => r.code),
    lost: of('lost').length,
    timeouts: of('timeout').length,
    failed: countBy(of('failed'), (r) => r.code),
    cut: of('cut').length
  }
}

/** Everything that is a failure (cut streams are not: the run ended them). */
export function failures(o: Outcomes): number {
  const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0)
  return sum(o.errors) + sum(o.refused) + o.lost + o.timeouts + sum(o.failed)
}

export function figures(run: LoadRun): LoadFigures {
  const windowSec = (run.windowEnd - run.windowStart) / 1000
  const inWindow = (at: number) => at >= run.windowStart && at <= run.windowEnd
  const done = run.records.filter((r) => r.terminal === 'done')
  const doneInWindow = done.filter((r) => inWindow(r.startAt + r.durationMs))
  return {
    windowSec,
    reqPerSec: doneInWindow.length / windowSec,
    chunksPerSec: run.records.reduce((n, r) => n + r.windowChunks, 0) / windowSec,
    // What was observed inside the window: streams that ended in it, first chunks that arrived in it.
    latencyMs: summarize(doneInWindow.map((r) => r.durationMs)),
    ttftMs: summarize(run.records.flatMap((r) => (r.ttftMs !== null && inWindow(r.startAt + r.ttftMs) ? [r.ttftMs] : []))),
    chunksPerStream: summarize(done.map((r) => r.chunks)),
    outcomes: outcomesOf(run.records)
  }
}
