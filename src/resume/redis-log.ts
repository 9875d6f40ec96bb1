// Stream events in Redis: any replica can replay a stream and follow it live (pub/sub), and tell
// when the replica producing it has died (it left the live replicas). Keys carry the stream's hash
// tag, so each pipeline and script stays in one slot of a Redis Cluster.
//
//   producer:  SET gw:s:{id}:owner, gw:s:{id}:tenant (first write, and again after Redis missed one)
//              RPUSH gw:s:{id}:ev <frames> · PUBLISH gw:s:{id} <frames>
//              SET gw:s:{id}:end <last id, terminal> · PUBLISH gw:s:{id} \0<last id, terminal>
//              (one pipeline in flight per stream; what comes meanwhile goes in the next one)
//   resumer:   SUBSCRIBE gw:s:{id} → one script: the tenant, the end, LRANGE …:ev, the owner, the
//              follower count → replay → live; every OWNER_CHECK_MS (and when the subscriber
//              reconnects or Redis answers again): GET …:end, LRANGE …:ev from where it is
//
// Writes are deliberate background calls: skipped while Redis cannot answer (the events of that
// time are missing there), except each stream's end, which is kept and written when Redis answers
// again. A stream's writes wait for each other because ioredis does not keep independent pipelines
// in order: a Cluster client sends those made while a node's connection is starting after later ones.
//
// The end record carries the id of the last event the stream produced, so that nobody mistakes a
// short copy for the whole stream: a follower that holds fewer when the end comes reads the list,
// and ends with stream_lost when Redis lacks any event up to that id, never with the terminal event
// short. Pub/sub is lossy (a subscriber that reconnects misses what was published meanwhile), so a
// follower never depends on it alone: a gap in a message, the subscriber's reconnection, Redis
// answering again, and every periodic check make it read the list and the end record.
import type { ChainableCommander } from 'ioredis'
import type { SharedRedis } from '../shared/redis.js'
import { wireError } from '../wire/error-event.js'
import { errorFrame } from '../wire/gateway-events.js'
import { eventsAfter, firstIdOf, lastIdOf } from '../wire/ids.js'
import { GONE_MS, type AttachResult, type ResumeSink, type StreamLog } from './stream-log.js'

const OWNER_CHECK_MS = 1_000
/** stream_lost when the producer lives on but Redis lacks events it wrote while Redis was away. */
const MISSING = 'Events of this stream are missing from the shared store (it was unavailable meanwhile); the events it held were replayed.'
const END = '\u0000'
const LAST = 'last: '
const key = (id: string, part: string) => `gw:s:{${id}}:${part}`
const channelOf = (id: string) => `gw:s:{${id}}`

/** The end record: the id of the stream's last event (0: none), then its terminal event. */
export const endRecord = (terminal: string, lastId: number): string => `${LAST}${lastId}\n${terminal}`

/** A record without the id (written before it carried one) is the terminal event alone: lastId undefined. */
export function readEnd(record: string): { terminal: string; lastId: number | undefined } {
  if (!record.startsWith(LAST)) return { terminal: record, lastId: undefined }
  const newline = record.indexOf('\n')
  return { terminal: record.slice(newline + 1), lastId: Number.parseInt(record.slice(LAST.length, newline), 10) }
}

/** Whether a batch's events are numbered without a hole (each event is `id: N…` after a blank line). */
function contiguous(frames: string): boolean {
  let events = 1
  for (let at = frames.indexOf('\n\nid: '); at >= 0; at = frames.indexOf('\n\nid: ', at + 2)) events++
  return events === lastIdOf(frames) - firstIdOf(frames) + 1
}

/**
 * A resume's first read, in one step: a stream of another tenant, or none, is 'unknown' alike (the
 * same path, the same reply). KEYS: tenant, end, ev, owner, gone, followers. ARGV: the resumer's
 * tenant ('' for none), the follower count's lifetime. Reply: {0, gone} or {1, events, end, owner}.
 */
const ATTACH = `
local tenant = redis.call('GET', KEYS[1]) or ''
if tenant ~= ARGV[1] then return {0, 0} end
local ended = redis.call('GET', KEYS[2])
local events = redis.call('LRANGE', KEYS[3], 0, -1)
local owner = redis.call('GET', KEYS[4])
if not ended and not owner and #events == 0 then return {0, redis.call('EXISTS', KEYS[5])} end
redis.call('INCR', KEYS[6])
redis.call('PEXPIRE', KEYS[6], ARGV[2])
return {1, events, ended, owner}
`

/** What a stream has to write next: its events, its end; in that order. */
interface Writes {
  frames: string
  end: string | undefined
}
const nothing = (): Writes => ({ frames: '', end: undefined })

/** A pipeline's own failure, or the first of its commands that failed. */
async function exec(pipeline: ChainableCommander): Promise<Array<[Error | null, unknown]>> {
  const results = (await pipeline.exec()) ?? []
  const failed = results.find(([err]) => err)
  if (failed?.[0]) throw failed[0]
  return results
}

export class RedisStreamLog implements StreamLog {
  private readonly listeners = new Map<string, Set<Follower>>()
  /** Ends that Redis could not take, written when it answers again, so that no follower waits forever. */
  private readonly pendingEnds = new Map<string, string>()
  /** Streams with a pipeline in flight, and what waits for it. */
  private readonly queued = new Map<string, Writes>()
  /** Who waits for a stream's end to be written (or to fail): its client's terminal event. */
  private readonly ending = new Map<string, () => void>()
  /** Streams this replica produces, until their end is written: whose, and whether Redis has their owner and tenant. */
  private readonly producing = new Map<string, { tenant: string | undefined; registered: boolean }>()

  constructor(
    private readonly redis: SharedRedis,
    private readonly ttlMs: number,
    private readonly maxStreamMs: number
  ) {
    redis.subscriber.on('message', (channel: string, message: string) => {
      for (const follower of this.listeners.get(channel) ?? []) follower.message(message)
    })
    // What was published while the subscriber reconnected is lost to it: read the lists once it listens again.
    redis.subscriber.on('ready', () => this.resubscribed())
    redis.onRecovery(() => {
      const ends = [...this.pendingEnds]
      this.pendingEnds.clear()
      for (const [requestId, record] of ends) this.writeEnd(requestId, record)
      for (const followers of this.listeners.values()) for (const follower of followers) void follower.catchUp()
    })
  }

  private get live(): number {
    return this.maxStreamMs + this.ttlMs
  }

  open(requestId: string, tenant?: string): void {
    this.producing.set(requestId, { tenant, registered: false })
    this.write(requestId, {})
  }

  append(requestId: string, frames: string): void {
    this.write(requestId, { frames })
  }

  end(requestId: string, terminal: string, lastId: number): Promise<void> {
    return new Promise((resolve) => {
      this.ending.set(requestId, resolve)
      this.writeEnd(requestId, endRecord(terminal, lastId))
    })
  }

  /** The end is in Redis, or Redis failed to take it (it is written when Redis answers again). */
  private settled(requestId: string): void {
    this.ending.get(requestId)?.()
    this.ending.delete(requestId)
  }

  private writeEnd(requestId: string, record: string): void {
    if (this.redis.up) this.write(requestId, { end: record })
    else {
      this.skipped(requestId)
      this.pendingEnds.set(requestId, record)
      this.settled(requestId)
    }
  }

  private write(requestId: string, writes: Partial<Writes>): void {
    if (!this.redis.up) {
      this.skipped(requestId)
      return
    }
    const waiting = this.queued.get(requestId)
    if (!waiting) {
      this.queued.set(requestId, nothing())
      this.send(requestId, { ...nothing(), ...writes })
      return
    }
    waiting.frames += writes.frames ?? ''
    waiting.end ??= writes.end
  }

  /**
   * Redis misses a write: the owner and tenant go with the next one (Redis may have lost them), and
   * the events that waited are dropped too, so that every batch in Redis is whole: a hole is always
   * between batches, where a follower sees it.
   */
  private skipped(requestId: string): void {
    const producing = this.producing.get(requestId)
    if (producing) producing.registered = false
    const waiting = this.queued.get(requestId)
    if (waiting) waiting.frames = ''
  }

  private send(requestId: string, writes: Writes): void {
    const pipeline = this.redis.client.pipeline()
    const producing = this.producing.get(requestId)
    const register = producing !== undefined && !producing.registered
    if (register) {
      pipeline.set(key(requestId, 'owner'), this.redis.replicaId, 'PX', this.live)
      if (producing.tenant !== undefined) pipeline.set(key(requestId, 'tenant'), producing.tenant, 'PX', GONE_MS)
    }
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
      // The binding outlives the events as long as "it ended" does, so that 204 answers its tenant only.
      if (producing?.tenant !== undefined) pipeline.set(key(requestId, 'tenant'), producing.tenant, 'PX', GONE_MS)
      pipeline.publish(channelOf(requestId), END + writes.end)
    }
    exec(pipeline).then(
      () => {
        if (register) producing.registered = true
        if (writes.end !== undefined) {
          this.producing.delete(requestId)
          this.settled(requestId)
        }
        const next = this.queued.get(requestId) ?? nothing()
        if (next.frames || next.end !== undefined) {
          this.queued.set(requestId, nothing())
          this.send(requestId, next)
        } else this.queued.delete(requestId)
      },
      (err: unknown) => {
        // Redis counts as down now: the events that waited are skipped, the end is kept.
        const end = writes.end ?? this.queued.get(requestId)?.end
        this.queued.delete(requestId)
        if (producing) producing.registered = false
        this.redis.failed(end === undefined ? 'resume.append' : 'resume.end', err)
        if (end !== undefined) this.pendingEnds.set(requestId, end)
        this.settled(requestId)
      }
    )
  }

  /** Throws when Redis cannot answer (nothing is left subscribed or counted then). */
  async attach(requestId: string, afterId: number, sink: ResumeSink, tenant?: string): Promise<AttachResult> {
    const channel = channelOf(requestId)
    const follower = new Follower(this.redis, requestId, afterId, sink, (counted) => {
      const set = this.listeners.get(channel)
      set?.delete(follower)
      if (set?.size === 0) {
        this.listeners.delete(channel)
        this.redis.background('resume.unsubscribe', this.redis.subscriber.unsubscribe(channel))
      }
      if (counted) this.redis.background('resume.detach', this.redis.client.decr(key(requestId, 'followers')))
    })
    try {
      // Subscribe before reading, so nothing published in between is missed (duplicates are dropped by id).
      const set = this.listeners.get(channel) ?? new Set()
      set.add(follower)
      if (!this.listeners.has(channel)) {
        this.listeners.set(channel, set)
        await this.redis.subscriber.subscribe(channel)
      }
      const parts = ['tenant', 'end', 'ev', 'owner', 'gone', 'followers'].map((part) => key(requestId, part))
      const reply = (await this.redis.client.eval(ATTACH, parts.length, ...parts, tenant ?? '', String(this.live))) as
        [0, number] | [1, string[], string | null, string | null]
      if (reply[0] === 0) {
        follower.detach()
        return { kind: reply[1] === 1 ? 'gone' : 'unknown' }
      }
      await follower.start(reply[1], reply[2], reply[3])
    } catch (err) {
      // Half attached: leave nothing behind, and let the caller answer from what it holds.
      follower.detach()
      throw err
    }
    return { kind: 'attached', attachment: follower }
  }

  /** Each follower reads what it may have missed once its subscription is back. */
  private resubscribed(): void {
    const channels = [...this.listeners.keys()]
    if (channels.length === 0) return
    // ioredis resubscribes when the connection is ready; this waits until Redis has those subscriptions too.
    Promise.all(channels.map((channel) => this.redis.subscriber.subscribe(channel))).then(
      () => {
        for (const channel of channels) for (const follower of this.listeners.get(channel) ?? []) void follower.catchUp()
      },
      (err: unknown) => this.redis.failed('resume.subscribe', err)
    )
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

/** One client following a stream through Redis: the replay, then pub/sub, with the list as the truth. */
class Follower {
  /** The id of the last event sent to the client. */
  private sentId: number
  /** List entries read, or received whole through pub/sub: where the next read of the list starts (never past one unread). */
  private index = 0
  /** The last id of the latest entry counted in `index`. */
  private indexedId = 0
  /** The highest event id known to exist: seen in a message, or the end's last id. */
  private known = 0
  private end: { terminal: string; lastId: number | undefined } | undefined
  private owner = ''
  /** Messages that arrived before the first read, handled after it. */
  private early: string[] | undefined = []
  private counted = false
  private done = false
  private reading: Promise<void> | undefined
  private again = false
  private checking = false
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly redis: SharedRedis,
    private readonly requestId: string,
    afterId: number,
    private readonly sink: ResumeSink,
    private readonly release: (counted: boolean) => void
  ) {
    this.sentId = afterId
  }

  /** The first read (one atomic step): replay, then either the end or live. */
  async start(events: string[], ended: string | null, owner: string | null): Promise<void> {
    this.counted = true
    for (const batch of events) {
      if (!this.deliver(batch, false)) {
        this.lost(MISSING)
        return
      }
    }
    this.indexed(0, events)
    if (ended !== null) {
      // Read with the list in one step: what the list lacks, Redis lacks.
      const end = readEnd(ended)
      if (end.lastId === undefined || this.sentId >= end.lastId) this.finish(end.terminal)
      else this.lost(MISSING)
      return
    }
    const early = this.early ?? []
    this.early = undefined
    for (const message of early) this.message(message)
    if (this.done) return
    if (owner === null) {
      this.lost()
      return
    }
    this.owner = owner
    // Attached, and the client may have its replay already: from here nothing throws. While Redis
    // cannot say whether the producer lives, the follower waits, as its periodic check does.
    let alive = true
    try {
      alive = await this.redis.isAlive(owner)
    } catch (err) {
      this.redis.failed('resume.owner', err)
    }
    if (this.over()) return
    if (!alive) this.lost()
    else this.timer = setInterval(() => void this.check(), OWNER_CHECK_MS).unref()
  }

  /** A pub/sub message: events, or the end. */
  message(message: string): void {
    if (this.done) return
    if (this.early) {
      this.early.push(message)
      return
    }
    if (message.startsWith(END)) {
      const end = readEnd(message.slice(1))
      this.end ??= end
      if (end.lastId === undefined || this.sentId >= end.lastId) this.finish(end.terminal)
      else {
        // Ended while this follower holds fewer: the list has what pub/sub did not bring, or Redis lacks it.
        this.known = Math.max(this.known, end.lastId)
        void this.catchUp()
      }
      return
    }
    // A hole: pub/sub lost a message, or Redis lacks events; the list says which.
    if (!this.deliver(message, true)) void this.catchUp()
  }

  /**
   * Reads the end record and the list after what this follower has: sends what it missed, finishes
   * when the end is there and nothing is missing, stream_lost when Redis lacks an event it knows of.
   * One read at a time; a call during one makes it read again, and waits for that.
   */
  catchUp(): Promise<void> {
    if (this.done) return Promise.resolve()
    if (this.reading) {
      this.again = true
      return this.reading
    }
    this.reading = (async () => {
      try {
        do {
          this.again = false
          // What Redis must hold by the time it answers: the events known of now, and those its end names.
          const from = this.index
          const known = this.known
          let expected = Math.max(known, await this.read(from))
          // A list Redis lost and began again (restarted empty) is shorter than counted: read it all.
          if (!this.done && from > 0 && this.sentId < expected) expected = Math.max(expected, await this.read(0))
          if (this.done) return
          if (this.sentId < expected) {
            this.lost(MISSING)
            return
          }
          if (this.end && (this.end.lastId === undefined || this.sentId >= this.end.lastId)) {
            this.finish(this.end.terminal)
            return
          }
          // Messages told of later events while it read: read again.
          if (this.sentId < this.known) this.again = true
        } while (this.again && !this.over())
      } catch (err) {
        // Redis cannot say now: the next check, its recovery or the subscriber's return reads again.
        this.redis.failed('resume.catchup', err)
      } finally {
        this.reading = undefined
      }
    })()
    return this.reading
  }

  /**
   * GET the end, then LRANGE from `from` (in this order: an end read means every event it follows is
   * in the list). Returns the last id the end names (0 without one); a hole in the list counts as
   * an event missing (Infinity): what Redis lacks.
   */
  private async read(from: number): Promise<number> {
    const [[, ended], [, events]] = (await exec(
      this.redis.client.pipeline().get(key(this.requestId, 'end')).lrange(key(this.requestId, 'ev'), from, -1)
    )) as [[null, string | null], [null, string[]]]
    if (this.done) return 0
    let named = 0
    if (ended !== null) {
      this.end ??= readEnd(ended)
      named = this.end.lastId ?? 0
      this.known = Math.max(this.known, named)
    }
    for (const batch of events) if (!this.deliver(batch, false)) return Number.POSITIVE_INFINITY
    this.indexed(from, events)
    return named
  }

  private indexed(from: number, events: string[]): void {
    this.index = from + events.length
    const last = events.at(-1)
    if (last) this.indexedId = Math.max(this.indexedId, lastIdOf(last))
  }

  /** Sends the events of a batch the client has not seen; false when events before them are missing. */
  private deliver(batch: string, live: boolean): boolean {
    const last = lastIdOf(batch)
    this.known = Math.max(this.known, last)
    const fresh = eventsAfter(batch, this.sentId)
    if (fresh) {
      if (firstIdOf(fresh) > this.sentId + 1 || !contiguous(fresh)) return false
      this.sentId = lastIdOf(fresh)
      this.sink.frames(fresh)
    }
    // A whole entry after every one counted is the list's next: the next read starts after it.
    if (live && firstIdOf(batch) > this.indexedId) {
      this.index++
      this.indexedId = last
    }
    return true
  }

  /** Every OWNER_CHECK_MS: what pub/sub may have lost, then whether the producer is still alive. */
  private async check(): Promise<void> {
    if (this.checking || this.done || !this.redis.up) return
    this.checking = true
    try {
      await this.catchUp()
      if (this.over() || !this.answering()) return
      if (!(await this.redis.isAlive(this.owner))) {
        // It may have written its end just before it left.
        await this.catchUp()
        this.lost()
      }
    } catch (err) {
      // While Redis cannot say, the follower waits: an answer that cannot be had is no death.
      this.redis.failed('resume.owner', err)
    } finally {
      this.checking = false
    }
  }

  /** Whether Redis answers: read anew after an await. */
  private answering(): boolean {
    return this.redis.up
  }

  /** Whether it ended: read anew after every await (another path may have ended it meanwhile). */
  private over(): boolean {
    return this.done
  }

  private finish(terminal: string): void {
    if (this.done) return
    this.done = true
    this.stop()
    this.sink.end(terminal)
  }

  /** The registry's message: the producer stopped; or another reason. */
  private lost(message?: string): void {
    this.finish(errorFrame(wireError('stream_lost', message)))
  }

  private stop(): void {
    clearInterval(this.timer)
    this.release(this.counted)
  }

  /** The client left, or the attach failed: nothing stays subscribed or counted. */
  detach(): void {
    if (this.done) return
    this.done = true
    this.stop()
  }
}
