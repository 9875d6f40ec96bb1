// Stream events in this process: resume works against the replica that produced the stream.
import { eventsAfter } from '../wire/ids.js'
import { GONE_MS, type AttachResult, type ResumeSink, type StreamLog } from './stream-log.js'
import { oldestKey } from '../shared/maps.js'

interface Entry {
  batches: Array<{ lastId: number; frames: string }>
  terminal: string | undefined
  sinks: Set<ResumeSink>
  endedAt: number
}

/** Ended streams kept replayable at once, beyond which the oldest are forgotten early (memory bound). */
const MAX_ENDED = 10_000
const MAX_GONE = 100_000

export class MemoryStreamLog implements StreamLog {
  private readonly live = new Map<string, Entry>()
  /** Ended, oldest first. */
  private readonly ended = new Map<string, Entry>()
  private readonly gone = new Map<string, number>()
  private readonly sweeper: NodeJS.Timeout

  constructor(private readonly ttlMs: number) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(250, ttlMs / 4)).unref()
  }

  open(requestId: string): void {
    this.live.set(requestId, { batches: [], terminal: undefined, sinks: new Set(), endedAt: 0 })
  }

  append(requestId: string, frames: string, lastId: number): void {
    const entry = this.live.get(requestId)
    if (!entry) return
    entry.batches.push({ lastId, frames })
    for (const sink of entry.sinks) sink.frames(frames)
  }

  end(requestId: string, terminal: string): void {
    const entry = this.live.get(requestId)
    if (!entry) return
    this.live.delete(requestId)
    entry.terminal = terminal
    for (const sink of entry.sinks) sink.end(terminal)
    entry.sinks.clear()
    entry.endedAt = Date.now()
    this.ended.set(requestId, entry)
    const oldest = this.ended.size > MAX_ENDED ? oldestKey(this.ended) : undefined
    if (oldest !== undefined) this.forget(oldest)
  }

  async attach(requestId: string, afterId: number, sink: ResumeSink): Promise<AttachResult> {
    const entry = this.live.get(requestId) ?? this.ended.get(requestId)
    if (!entry) return (this.gone.get(requestId) ?? 0) > Date.now() ? { kind: 'gone' } : { kind: 'unknown' }
    for (const batch of entry.batches) {
      if (batch.lastId > afterId) sink.frames(eventsAfter(batch.frames, afterId))
    }
    if (entry.terminal !== undefined) {
      sink.end(entry.terminal)
      return { kind: 'attached', attachment: { detach() {} } }
    }
    entry.sinks.add(sink)
    return { kind: 'attached', attachment: { detach: () => entry.sinks.delete(sink) } }
  }

  /** Whether this replica still holds the stream's events (it produced it, and they have not expired). */
  holds(requestId: string): boolean {
    return this.live.has(requestId) || this.ended.has(requestId)
  }

  async followed(requestId: string): Promise<boolean> {
    return (this.live.get(requestId)?.sinks.size ?? 0) > 0
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper)
  }

  /** `ended` is in order of ending, so the expired are at its front. */
  private sweep(): void {
    const expired = Date.now() - this.ttlMs
    for (const [requestId, entry] of this.ended) {
      if (entry.endedAt > expired) break
      this.forget(requestId)
    }
  }

  private forget(requestId: string): void {
    this.ended.delete(requestId)
    this.gone.set(requestId, Date.now() + GONE_MS)
    const oldest = this.gone.size > MAX_GONE ? oldestKey(this.gone) : undefined
    if (oldest !== undefined) this.gone.delete(oldest)
  }
}
