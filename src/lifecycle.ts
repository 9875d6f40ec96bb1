// Draining: once it starts, /readyz says 503 and new turns are refused with shutting_down;
// open streams get SHUTDOWN_GRACE_MS to finish, then each ends with a shutting_down error event.
import { EventEmitter, once } from 'node:events'
import { GatewayError, RETRY_AFTER_S } from './errors.js'

export interface OpenStream {
  /** Ends the stream now with shutting_down and cancels its upstream call. */
  shutdown(): void
}

export class Lifecycle extends EventEmitter {
  draining = false
  readonly streams = new Set<OpenStream>()

  /** Throws shutting_down once draining has begun. */
  admit(): void {
    if (this.draining) throw new GatewayError('shutting_down', undefined, RETRY_AFTER_S)
  }

  track(stream: OpenStream): void {
    this.streams.add(stream)
  }

  untrack(stream: OpenStream): void {
    this.streams.delete(stream)
    if (this.streams.size === 0) this.emit('idle')
  }

  async drain(graceMs: number): Promise<void> {
    this.draining = true
    if (this.streams.size > 0) {
      const grace = AbortSignal.timeout(graceMs)
      await once(this, 'idle', { signal: grace }).catch(() => {})
    }
    for (const stream of this.streams) stream.shutdown()
  }
}
