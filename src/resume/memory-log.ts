// Stream events in this process: resume works against the replica that produced the stream.
//
// Memory is bounded twice: by count (MAX_ENDED ended streams) and by bytes (RESUME_MAX_BYTES over
// every frame held, live or ended). Over the byte budget the oldest ended streams are forgotten
// first (a resume of one is 204, as after RESUME_TTL_MS); if live streams alone exceed it, the oldest
// live stream's events are dropped and it holds none from then on, so that a resume from before its
// newest event ends with stream_lost rather than replay it short.
import { wireError } from '../wire/error-event.js'
import { errorFrame } from '../wire/gateway-events.js'
import { eventsAfter } from '../wire/ids.js'
import { GONE_MS, sameTenant, type AttachResult, type ResumeSink, type StreamLog } from './stream-log.js'
import { oldestKey } from '../shared/maps.js'

interface Entry {
  tenant: string | undefined
  batches: Array<{ lastId: number; frames: string }>
  /** The id of the last event produced (held or not). */
  lastId: number
  terminal: string | undefined
  /** Followers, each with the id it attached after: live events up to it are not sent again. */
  sinks: Map<ResumeSink, number>
  endedAt: number
  /** Counted bytes held (bytesOf). */
  bytes: number
  /** Its events were dropped for the byte budget: it holds none, and a resume from before `lastId` is stream_lost. */
  dropped: boolean
}

/** Ended streams kept replayable at once, beyond which the oldest are forgotten early (memory bound). */
const MAX_ENDED = 10_000
const MAX_GONE = 100_000

/**
 * What a held batch counts against RESUME_MAX_BYTES: two bytes a character, the most V8 stores a
 * string's characters in (one for Latin-1 text, two otherwise), so the count never falls short of
 * what is held, and O(1) on the hot path where Buffer.byteLength would scan every frame (and count
 * UTF-8, which is not how V8 holds them); plus the batch's own object and array slot.
 */
export const bytesOf = (frames: string): number => frames.length * 2 + BATCH_OVERHEAD
const BATCH_OVERHEAD = 48

export class MemoryStreamLog implements StreamLog {
  private readonly live = new Map<string, Entry>()
  /** Live streams that hold events, oldest first: the ones to drop when live streams alone exceed the budget. */
  private readonly holding = new Map<string, Entry>()
  /** Ended, oldest first. */
  private readonly ended = new Map<string, Entry>()
  private readonly gone = new Map<string, { until: number; tenant: string | undefined }>()
  private readonly sweeper: NodeJS.Timeout
  private held = 0

  constructor(
    private readonly ttlMs: number,
    private readonly maxBytes: number = Number.POSITIVE_INFINITY
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(250, ttlMs / 4)).unref()
  }

  /** Counted bytes held now, every stream together. */
  get bytes(): number {
    return this.held
  }

  open(requestId: string, tenant?: string): void {
    this.live.set(requestId, {
      tenant,
      batches: [],
      lastId: 0,
      terminal: undefined,
      sinks: new Map(),
      endedAt: 0,
      bytes: 0,
      dropped: false
    })
  }

  append(requestId: string, frames: string, lastId: number): void {
    const entry = this.live.get(requestId)
    if (!entry) return
    entry.lastId = lastId
    for (const [sink, afterId] of entry.sinks) {
      if (lastId > afterId) sink.frames(eventsAfter(frames, afterId))
    }
    if (entry.dropped) return
    entry.batches.push({ lastId, frames })
    this.count(entry, bytesOf(frames))
    this.holding.set(requestId, entry) // kept at its first place: a Map re-set keeps the order
    this.reclaim()
  }

  end(requestId: string, terminal: string, lastId: number): Promise<void> {
    this.store(requestId, terminal, lastId)
    return Promise.resolve()
  }

  private store(requestId: string, terminal: string, lastId: number): void {
    const entry = this.live.get(requestId)
    if (!entry) return
    this.live.delete(requestId)
    this.holding.delete(requestId)
    entry.terminal = terminal
    entry.lastId = Math.max(entry.lastId, lastId)
    for (const sink of entry.sinks.keys()) sink.end(terminal)
    entry.sinks.clear()
    entry.endedAt = Date.now()
    this.count(entry, terminal.length * 2)
    this.ended.set(requestId, entry)
    const oldest = this.ended.size > MAX_ENDED ? oldestKey(this.ended) : undefined
    if (oldest !== undefined) this.forget(oldest)
    this.reclaim()
  }

  async attach(requestId: string, afterId: number, sink: ResumeSink, tenant?: string): Promise<AttachResult> {
    const entry = this.entry(requestId, tenant)
    if (!entry) {
      const gone = this.gone.get(requestId)
      return gone && gone.until > Date.now() && sameTenant(gone.tenant, tenant) ? { kind: 'gone' } : { kind: 'unknown' }
    }
    // Its events were dropped for the byte budget: never replay it short.
    if (entry.dropped && afterId < entry.lastId) {
      sink.end(errorFrame(wireError('stream_lost', 'This replica dropped the events of this stream to stay within RESUME_MAX_BYTES.')))
      return { kind: 'attached', attachment: { detach() {} } }
    }
    for (const batch of entry.batches) {
      if (batch.lastId > afterId) sink.frames(eventsAfter(batch.frames, afterId))
    }
    if (entry.terminal !== undefined) {
      sink.end(entry.terminal)
      return { kind: 'attached', attachment: { detach() {} } }
    }
    entry.sinks.set(sink, afterId)
    return { kind: 'attached', attachment: { detach: () => entry.sinks.delete(sink) } }
  }

  /**
   * Whether this replica can replay the stream to this tenant from `afterId` (it produced it, and the
   * events are still held). A stream of another tenant is not held, so that a shared log asks Redis
   * as it would for an unknown stream, and answers alike.
   */
  holds(requestId: string, tenant?: string, afterId = 0): boolean {
    const entry = this.entry(requestId, tenant)
    return entry !== undefined && !(entry.dropped && afterId < entry.lastId)
  }

  async followed(requestId: string): Promise<boolean> {
    return (this.live.get(requestId)?.sinks.size ?? 0) > 0
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper)
  }

  private entry(requestId: string, tenant: string | undefined): Entry | undefined {
    const entry = this.live.get(requestId) ?? this.ended.get(requestId)
    return entry && sameTenant(entry.tenant, tenant) ? entry : undefined
  }

  private count(entry: Entry, bytes: number): void {
    entry.bytes += bytes
    this.held += bytes
  }

  /** Over the budget: forget the oldest ended streams, then drop the events of the oldest live ones. */
  private reclaim(): void {
    while (this.held > this.maxBytes) {
      const ended = oldestKey(this.ended)
      if (ended !== undefined) {
        this.forget(ended)
        continue
      }
      const oldest = this.holding.entries().next()
      if (oldest.done) return
      const [live, entry] = oldest.value
      this.holding.delete(live)
      this.held -= entry.bytes
      entry.bytes = 0
      entry.batches = []
      entry.dropped = true
    }
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
    const entry = this.ended.get(requestId)
    if (!entry) return
    this.ended.delete(requestId)
    this.held -= entry.bytes
    this.gone.set(requestId, { until: Date.now() + GONE_MS, tenant: entry.tenant })
    const oldest = this.gone.size > MAX_GONE ? oldestKey(this.gone) : undefined
    if (oldest !== undefined) this.gone.delete(oldest)
  }
}
