// Stream events in Redis: any replica can replay a stream and follow it live (pub/sub), and tell
// when the replica producing it has died (it left the live replicas). Keys carry the stream's hash
// tag, so each pipeline stays in one slot of a Redis Cluster.
//
//   producer:  SET gw:s:{id}:owner · RPUSH gw:s:{id}:ev <frames> · PUBLISH gw:s:{id} <frames>
//              SET gw:s:{id}:end <terminal> · PUBLISH gw:s:{id} \0<terminal>
//              (one pipeline in flight per stream; what comes meanwhile goes in the next one)
//   resumer:   SUBSCRIBE gw:s:{id} → LRANGE …:ev, GET …:end, GET …:owner → replay → live
//
// Writes are deliberate background calls: skipped while Redis cannot answer (the events of that
// time are missing there, and a follower that meets the gap ends with stream_lost rather than skip
// text), except each stream's end, which is kept and written when Redis answers again. A stream's
// writes wait for each other because ioredis does not keep independent pipelines in order: a
// Cluster client sends those made while a node's connection is starting after later ones.
import type { ChainableCommander } from 'ioredis'
import type { SharedRedis } from '../shared/redis.js'
import { wireError } from '../wire/error-event.js'
import { errorFrame } from '../wire/gateway-events.js'
import { eventsAfter, firstIdOf, lastIdOf } from '../wire/ids.js'
import { GONE_MS, type AttachResult, type ResumeSink, type StreamLog } from './stream-log.js'

const OWNER_CHECK_MS = 1_000
const END = '\u0000'
const key = (id: string, part: string) => `gw:s:{${id}}:${part}`
const channelOf = (id: string) => `gw:s:{${id}}`

type Listener = (message: string) => void

/** What a stream has to write next: its owner, events, its end; in that order. */
interface Writes {
  owner: boolean
  frames: string
  end: string | undefined
}
const nothing = (): Writes => ({ owner: false, frames: '', end: undefined })

/** A pipeline's own failure, or the first of its commands that failed. */
async function exec(pipeline: ChainableCommander): Promise<Array<[Error | null, unknown]>> {
  const results = (await pipeline.exec()) ?? []
  const failed = results.find(([err]) => err)
  if (failed?.[0]) throw failed[0]
  return results
}

export class RedisStreamLog implements StreamLog {
  private readonly listeners = new Map<string, Set<Listener>>()
  /** Ends that Redis could not take, written when it answers again, so that no follower waits forever. */
  private readonly pendingEnds = new Map<string, string>()
  /** Streams with a pipeline in flight, and what waits for it. */
  private readonly queued = new Map<string, Writes>()

  constructor(
    private readonly redis: SharedRedis,
    private readonly ttlMs: number,
    private readonly maxStreamMs: number
  ) {
    redis.subscriber.on('message', (channel: string, message: string) => {
      for (const listener of this.listeners.get(channel) ?? []) listener(message)
    })
    redis.onRecovery(() => {
      const ends = [...this.pendingEnds]
      this.pendingEnds.clear()
      for (const [requestId, terminal] of ends) this.end(requestId, terminal)
    })
  }

  private get live(): number {
    return this.maxStreamMs + this.ttlMs
  }

  open(requestId: string): void {
    this.write(requestId, { owner: true })
  }

  append(requestId: string, frames: string): void {
    this.write(requestId, { frames })
  }

  end(requestId: string, terminal: string): void {
    if (this.redis.up) this.write(requestId, { end: terminal })
    else this.pendingEnds.set(requestId, terminal)
  }

  private write(requestId: string, writes: Partial<Writes>): void {
    if (!this.redis.up) return
    const waiting = this.queued.get(requestId)
    if (!waiting) {
      this.queued.set(requestId, nothing())
      this.send(requestId, { ...nothing(), ...writes })
      return
    }
    waiting.owner ||= writes.owner ?? false
    waiting.frames += writes.frames ?? ''
    waiting.end ??= writes.end
  }

  private send(requestId: string, writes: Writes): void {
    const pipeline = this.redis.client.pipeline()
    if (writes.owner) pipeline.set(key(requestId, 'owner'), this.redis.replicaId, 'PX', this.live)
    if (writes.frames) {
      pipeline
        .rpush(key(requestId, 'ev'), writes.frames)
        .pexpire(key(requestId, 'ev'), this.live)
        .publish(channelOf(requestId), writes.frames)
    }
    if (writes.end !== undefined) {
      pipeline
        .set(key(requestId, 'end'), writes.end, 'PX', this.ttlMs)
        .pexpire(key(requestId, 'ev'), this.ttlMs)
        .pexpire(key(requestId, 'owner'), this.ttlMs)
        .set(key(requestId, 'gone'), '1', 'PX', GONE_MS)
        .publish(channelOf(requestId), END + writes.end)
    }
    exec(pipeline).then(
      () => {
        const next = this.queued.get(requestId) ?? nothing()
        if (next.owner || next.frames || next.end !== undefined) {
          this.queued.set(requestId, nothing())
          this.send(requestId, next)
        } else this.queued.delete(requestId)
      },
      (err: unknown) => {
        // Redis counts as down now: the events that waited are skipped, the end is kept.
        const end = writes.end ?? this.queued.get(requestId)?.end
        this.queued.delete(requestId)
        this.redis.failed(end === undefined ? 'resume.append' : 'resume.end', err)
        if (end !== undefined) this.pendingEnds.set(requestId, end)
      }
    )
  }

  /** Throws when Redis cannot answer (nothing is left subscribed or counted then). */
  async attach(requestId: string, afterId: number, sink: ResumeSink): Promise<AttachResult> {
    const channel = channelOf(requestId)
    const early: string[] = []
    let sentId = afterId
    let done = false
    let counted = false
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
    const lost = () => finish(errorFrame(wireError('stream_lost')))
    const detach = () => {
      clearInterval(ownerCheck)
      const set = this.listeners.get(channel)
      set?.delete(listener)
      if (set?.size === 0) {
        this.listeners.delete(channel)
        this.redis.background('resume.unsubscribe', this.redis.subscriber.unsubscribe(channel))
      }
      if (counted) this.redis.background('resume.detach', this.redis.client.decr(key(requestId, 'followers')))
    }
    const forward = (message: string) => {
      if (done) return
      if (message.startsWith(END)) {
        finish(message.slice(1))
        return
      }
      const fresh = eventsAfter(message, sentId)
      if (!fresh) return
      // Events missing in between (written while Redis was away): never skip text silently.
      if (firstIdOf(fresh) > sentId + 1) {
        lost()
        return
      }
      sentId = lastIdOf(message)
      sink.frames(fresh)
    }

    try {
      // Subscribe before reading, so nothing published in between is missed (duplicates are dropped by id).
      const set = this.listeners.get(channel) ?? new Set()
      set.add(listener)
      if (!this.listeners.has(channel)) {
        this.listeners.set(channel, set)
        await this.redis.subscriber.subscribe(channel)
      }
      await exec(this.redis.client.pipeline().incr(key(requestId, 'followers')).pexpire(key(requestId, 'followers'), this.live))
      counted = true
      const [events, terminal, owner, gone] = await exec(
        this.redis.client
          .pipeline()
          .lrange(key(requestId, 'ev'), 0, -1)
          .get(key(requestId, 'end'))
          .get(key(requestId, 'owner'))
          .exists(key(requestId, 'gone'))
      )
      const batches = (events?.[1] ?? []) as string[]
      const end = terminal?.[1] as string | null
      const producer = owner?.[1] as string | null
      if (batches.length === 0 && end === null && producer === null) {
        done = true
        detach()
        return { kind: (gone?.[1] as number) === 1 ? 'gone' : 'unknown' }
      }
      for (const batch of batches) forward(batch)
      if (end !== null) finish(end)
      else {
        deliver = forward
        for (const message of early) forward(message)
        if (producer === null || !(await this.redis.isAlive(producer))) lost()
        else ownerCheck = setInterval(() => void this.checkOwner(producer, lost), OWNER_CHECK_MS).unref()
      }
    } catch (err) {
      // Half attached: leave nothing behind, and let the caller answer from what it holds.
      done = true
      detach()
      throw err
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

  /** While Redis cannot say, the follower waits: an answer that cannot be had is no death. */
  private async checkOwner(producer: string, lost: () => void): Promise<void> {
    if (!this.redis.up) return
    try {
      if (!(await this.redis.isAlive(producer))) lost()
    } catch (err) {
      this.redis.failed('resume.owner', err)
    }
  }

  async followed(requestId: string): Promise<boolean> {
    if (!this.redis.up) return false
    try {
      return Number(await this.redis.client.get(key(requestId, 'followers'))) > 0
    } catch (err) {
      this.redis.failed('resume.followed', err)
      return false
    }
  }

  async close(): Promise<void> {}
}
