// The gateway's JSON log lines (pino), summarised: how many of each message, and the worker
// faults by cause.

export interface LogLine {
  msg?: string
  level?: number
  cause?: string
  threadId?: number
  time?: number
  err?: { message?: string }
}

export function parseLines(lines: readonly string[]): LogLine[] {
  const out: LogLine[] = []
  for (const line of lines) {
    if (!line.startsWith('{')) continue
    try {
      out.push(JSON.parse(line) as LogLine)
    } catch {
      // not a log line
    }
  }
  return out
}

/** {"worker fault": 12, "worker stalled; terminated": 3, …} */
export function messageCounts(lines: readonly LogLine[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const l of lines) {
    const key = l.err?.message ? `${l.msg}: ${l.err.message}` : (l.msg ?? '?')
    out[key] = (out[key] ?? 0) + 1
  }
  return out
}

/**
 * From the "worker fault" lines (one per stream a fault reached): distinct worker threads by
 * cause, and the number of stream-level faults (retried ones included).
 */
export function faultCauses(lines: readonly LogLine[]): { workers: Record<string, number>; streams: number } {
  const threads = new Map<string, Set<number | undefined>>()
  let streams = 0
  for (const l of lines) {
    if (l.msg !== 'worker fault' || !l.cause) continue
    streams++
    const set = threads.get(l.cause) ?? new Set()
    set.add(l.threadId)
    threads.set(l.cause, set)
  }
  return { workers: Object.fromEntries([...threads].map(([cause, set]) => [cause, set.size])), streams }
}
