// The stream log of a replica that shares Redis: every stream it produces is kept here in memory
// and in Redis. A resume asks this replica's memory first (its own streams, Redis or not), then
// Redis (streams of other replicas). While Redis cannot answer, a stream produced elsewhere cannot
// be resumed: store_unavailable (503, retryable), never a 404 that would make the client give up.
import { GatewayError, RETRY_AFTER_S } from '../errors.js'
import type { SharedRedis } from '../shared/redis.js'
import type { MemoryStreamLog } from './memory-log.js'
import type { RedisStreamLog } from './redis-log.js'
import type { AttachResult, ResumeSink, StreamLog } from './stream-log.js'

export class SharedStreamLog implements StreamLog {
  constructor(
    private readonly local: MemoryStreamLog,
    private readonly shared: RedisStreamLog,
    private readonly redis: SharedRedis
  ) {}

  open(requestId: string, tenant?: string): void {
    this.local.open(requestId, tenant)
    this.shared.open(requestId, tenant)
  }

  append(requestId: string, frames: string, lastId: number): void {
    this.local.append(requestId, frames, lastId)
    this.shared.append(requestId, frames)
  }

  end(requestId: string, terminal: string, lastId: number): Promise<void> {
    void this.local.end(requestId, terminal, lastId)
    return this.shared.end(requestId, terminal, lastId)
  }

  /**
   * A stream of another tenant is not held here, so it goes to Redis as an unknown one does, and is
   * answered alike (the same round trip, the same 404); one whose events this replica dropped for
   * RESUME_MAX_BYTES is replayed from Redis.
   */
  async attach(requestId: string, afterId: number, sink: ResumeSink, tenant?: string): Promise<AttachResult> {
    if (this.local.holds(requestId, tenant, afterId)) return this.local.attach(requestId, afterId, sink, tenant)
    const unavailable = new GatewayError('store_unavailable', 'The shared stream store is unavailable; retry shortly.', RETRY_AFTER_S)
    if (!this.redis.up) throw unavailable
    try {
      return await this.shared.attach(requestId, afterId, sink, tenant)
    } catch (err) {
      this.redis.failed('resume.attach', err)
      throw unavailable
    }
  }

  async followed(requestId: string): Promise<boolean> {
    return (await this.local.followed(requestId)) || (await this.shared.followed(requestId))
  }

  async close(): Promise<void> {
    await this.local.close()
  }
}
