// Stream events in Redis: any replica can replay a stream and follow it live (pub/sub), and tell
// when the replica producing it has died (its liveness key expired).
//
//   producer:  RPUSH gw:s:{id}:ev <frames> · PUBLISH gw:s:{id} <frames>   (one pipeline per batch)
//              SET gw:s:{id}:end <terminal> · PUBLISH gw:s:{id} \0<terminal>
//   resumer:   SUBSCRIBE gw:s:{id} → LRANGE …:ev, GET …:end, GET …:owner → replay → live
import { errorFrame } from '../chat/sse-frames.js'
import { wireError } from '../errors.js'
import type { SharedRedis } from '../shared/redis.js'
import { eventsAfter, lastIdOf, type AttachResult, type ResumeSink, type StreamLog } from './stream-log.js'

const GONE_MS = 24 * 3_600_000
const OWNER_CHECK_MS = 1_000
const END = '\u0000'
const key = (id: string, part: string) => `gw:s:${id}:${part}`
const channelOf = (id: string) => `gw:s:${id}`

type Listener = (message: string) => void

export class RedisStreamLog implements StreamLog {
  private readonly listeners = new Map<string, Set<Listener>>()

  constructor(
    private readonly redis: SharedRedis,
    private readonly ttlMs: number,
    private readonly maxStreamMs: number
  ) {
    redis.subscriber.on('message', (channel: string, message: string) => {
      for (const listener of this.listeners.get(channel) ?? []) listener(message)
    })
  }

  private get live(): number {
    return this.maxStreamMs + this.ttlMs
  }

  open(requestId: string): void {
    void this.redis.client.set(key(requestId, 'owner'), this.redis.replicaId, 'PX', this.live).catch(() => {})
  }

  append(requestId: string, frames: string): void {
    void this.redis.client
      .pipeline()
      .rpush(key(requestId, 'ev'), frames)
      .pexpire(key(requestId, 'ev'), this.live)
      .publish(channelOf(requestId), frames)
      .exec()
  }

  end(requestId: string, terminal: string): void {
    void this.redis.client
      .pipeline()
      .set(key(requestId, 'end'), terminal, 'PX', this.ttlMs)
      .pexpire(key(requestId, 'ev'), this.ttlMs)
      .pexpire(key(requestId, 'owner'), this.ttlMs)
      .set(key(requestId, 'gone'), '1', 'PX', GONE_MS)
      .publish(channelOf(requestId), END + terminal)
      .exec()
  }

  async attach(requestId: string, afterId: number, sink: ResumeSink): Promise<AttachResult> {
    const channel = channelOf(requestId)
    const early: string[] = []
    let sentId = afterId
    let done = false
    let ownerCheck: NodeJS.Timeout | undefined
    let deliver: Listener = (message) => {
      early.push(message)
    }
    const listener: Listener = (message) => deliver(message)

    const finish = (terminal: string) => {
      if (done) return
      done = true
      detach()
      sink.end(terminal)
    }
    const detach = () => {
      clearInterval(ownerCheck)
      const set = this.listeners.get(channel)
      set?.delete(listener)
      if (set?.size === 0) {
        this.listeners.delete(channel)
        void this.redis.subscriber.unsubscribe(channel).catch(() => {})
      }
      void this.redis.client.decr(key(requestId, 'followers')).catch(() => {})
    }
    const forward = (message: string) => {
      if (done) return
      if (message.startsWith(END)) {
        finish(message.slice(1))
        return
      }
      const fresh = eventsAfter(message, sentId)
      if (!fresh) return
      sentId = lastIdOf(message)
      sink.frames(fresh)
    }

    // Subscribe before reading, so nothing published in between is missed (duplicates are dropped by id).
    const set = this.listeners.get(channel) ?? new Set()
    if (set.size === 0) {
      this.listeners.set(channel, set)
      await this.redis.subscriber.subscribe(channel)
    }
    set.add(listener)
    await this.redis.client.pipeline().incr(key(requestId, 'followers')).pexpire(key(requestId, 'followers'), this.live).exec()
    const [events, terminal, owner, gone] = (await this.redis.client
      .pipeline()
      .lrange(key(requestId, 'ev'), 0, -1)
      .get(key(requestId, 'end'))
      .get(key(requestId, 'owner'))
      .exists(key(requestId, 'gone'))
      .exec()) as Array<[Error | null, unknown]>
    const batches = (events?.[1] ?? []) as string[]
    const end = terminal?.[1] as string | null
    const producer = owner?.[1] as string | null
    if (batches.length === 0 && end === null && producer === null) {
      done = true
      detach()
      return { kind: (gone?.[1] as number) === 1 ? 'gone' : 'unknown' }
    }
    for (const batch of batches) forward(batch)
    if (end !== null) {
      finish(end)
    } else {
      deliver = forward
      for (const message of early) forward(message)
      const lost = () => finish(errorFrame(wireError('stream_lost')))
      if (producer === null || !(await this.redis.isAlive(producer))) lost()
      else
        ownerCheck = setInterval(() => {
          void this.redis.isAlive(producer).then((alive) => {
            if (!alive) lost()
          })
        }, OWNER_CHECK_MS).unref()
    }
    return {
      kind: 'attached',
      attachment: {
        detach: () => {
          if (!done) {
            done = true
            detach()
          }
        }
      }
    }
  }

  async followed(requestId: string): Promise<boolean> {
    return Number(await this.redis.client.get(key(requestId, 'followers'))) > 0
  }

  async close(): Promise<void> {}
}
