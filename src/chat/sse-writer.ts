// Writes one chat turn as Server-Sent Events: meta, the chunk events the worker framed, heartbeats
// on a quiet stream, and exactly one terminal event. Bounded: a reader that lets more than
// STREAM_BUFFER_BYTES pile up is told `client_too_slow` and cut off.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { metaFrame } from './sse-frames.js'

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  // no-transform: compressing proxies would otherwise hold chunks back.
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive'
} as const

export interface Meta {
  requestId: string
  sessionId: string | null
  model: string
}

export interface Timing {
  ttftMs: number | null
  totalMs: number
}

/** One timer for every open stream: a stream that wrote nothing since the last tick gets `: ping`. */
export class Heartbeats {
  private readonly writers = new Set<SseWriter>()
  private readonly timer: NodeJS.Timeout
  constructor(intervalMs: number) {
    this.timer = setInterval(() => {
      for (const w of this.writers) w.heartbeat()
    }, intervalMs).unref()
  }
  add(w: SseWriter): void {
    this.writers.add(w)
  }
  delete(w: SseWriter): void {
    this.writers.delete(w)
  }
  close(): void {
    clearInterval(this.timer)
  }
}

/**
 * Chunk writes of one turn within one tick leave in one syscall. Unloaded, a tick carries one
 * message per stream and nothing changes; when the front falls behind, the messages queued on a
 * stream's port arrive in the same tick and are coalesced instead of costing a writev each.
 */
const corked = new Set<ServerResponse>()
const uncorkAll = (): void => {
  for (const res of corked) res.uncork()
  corked.clear()
}
function corkUntilNextTick(res: ServerResponse): void {
  if (corked.has(res)) return
  if (corked.size === 0) setImmediate(uncorkAll)
  corked.add(res)
  res.cork()
}

export class SseWriter {
  ended = false
  private wrote = false
  private readonly startedAt = performance.now()
  private firstChunkAt: number | undefined

  constructor(
    private readonly res: ServerResponse,
    private readonly heartbeats: Heartbeats,
    private readonly bufferLimit: number,
    /** Called when the reader fell too far behind: the caller ends the stream (client_too_slow) and cancels the upstream call. */
    private readonly onTooSlow: () => void,
    /** Thoughts are relayed before the answer: the first chunk is timed by answered(), not by the first frames. */
    private readonly thoughtsFirst = false
  ) {}

  /** `headers`: what hooks (CORS, security headers) already set on the reply Fastify no longer sends. */
  /** `meta`: null for a resumed stream, which continues where the client left off. */
  open(meta: Meta | null, headers: Record<string, string | number | string[] | undefined>): void {
    this.res.writeHead(200, { ...headers, ...SSE_HEADERS } as OutgoingHttpHeaders)
    if (meta) this.res.write(metaFrame(meta))
    else this.res.flushHeaders()
    this.heartbeats.add(this)
  }

  chunks(frames: string): void {
    if (this.ended) return
    if (!this.thoughtsFirst) this.firstChunkAt ??= performance.now()
    this.wrote = true
    corkUntilNextTick(this.res)
    this.res.write(frames)
    if (this.res.writableLength > this.bufferLimit) this.onTooSlow()
  }

  /** The frames just written held the first answer chunk (TTFT is to the answer, never to a thought). */
  answered(): void {
    this.firstChunkAt ??= performance.now()
  }

  get timing(): Timing {
    const now = performance.now()
    return {
      ttftMs: this.firstChunkAt === undefined ? null : Math.round(this.firstChunkAt - this.startedAt),
      totalMs: Math.round(now - this.startedAt)
    }
  }

  /** Ends the stream with a framed terminal event, and returns it (for the resume log). */
  finish(terminal: string): string {
    if (!this.ended) {
      this.abandon()
      this.res.end(terminal)
    }
    return terminal
  }

  heartbeat(): void {
    if (!this.wrote) this.res.write(': ping\n\n')
    this.wrote = false
  }

  /** The client went away: nothing more can be written. */
  abandon(): void {
    this.ended = true
    this.heartbeats.delete(this)
  }
}
