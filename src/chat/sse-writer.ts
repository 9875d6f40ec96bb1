// Writes one stream as Server-Sent Events: the events it is given (the worker's frames, meta in the
// gateway's dialect), heartbeats on a quiet stream, and exactly one terminal event. Bounded:
// a reader that lets more than STREAM_BUFFER_BYTES pile up is reported (client_too_slow) and cut off.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  // no-transform: compressing proxies would otherwise hold chunks back.
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive'
} as const

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

  constructor(
    private readonly res: ServerResponse,
    private readonly heartbeats: Heartbeats,
    private readonly bufferLimit: number,
    /** Called when the reader fell too far behind: the caller ends the stream (client_too_slow) and cancels the upstream call. */
    private readonly onTooSlow: () => void
  ) {}

  /** `headers`: what hooks (CORS, security headers) already set on the reply Fastify no longer sends. */
  open(headers: Record<string, string | number | string[] | undefined>): void {
    this.res.writeHead(200, { ...headers, ...SSE_HEADERS } as OutgoingHttpHeaders)
    this.res.flushHeaders()
    this.heartbeats.add(this)
  }

  chunks(frames: string): void {
    if (this.ended) return
    this.wrote = true
    corkUntilNextTick(this.res)
    this.res.write(frames)
    if (this.res.writableLength > this.bufferLimit) this.onTooSlow()
  }

  /** Ends the stream with a framed terminal event. */
  finish(terminal: string): void {
    if (this.ended) return
    this.abandon()
    this.res.end(terminal)
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
