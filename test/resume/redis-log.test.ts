// The Redis stream log: each stream's events reach Redis and its followers in order, then its end,
// on a Cluster client's first writes too; and when Redis stops answering halfway through an attach,
// it throws (the shared log then answers store_unavailable) and leaves no subscription, listener or
// follower count behind.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { RedisStreamLog } from '../../src/resume/redis-log.js'
import { connectRedis, type SharedRedis } from '../../src/shared/redis.js'
import { until } from '../helpers/gateway.js'
import { adminClient, startRedis, startRedisCluster, type TestRedis, type TestRedisCluster } from '../helpers/redis.js'
import { lacks } from '../helpers/system.js'

let server: TestRedis
let redis: SharedRedis
let admin: Redis
beforeAll(async () => {
  if (lacks('the Redis stream log faults', 'redis-server')) return
  server = await startRedis()
  redis = await connectRedis({ url: server.url, mode: 'standalone', commandTimeoutMs: 300 }, { state: () => {}, error: () => {} })
  admin = new Redis(server.url)
})
afterAll(async () => {
  admin?.disconnect()
  await redis?.close()
  await server?.stop()
})

test.skipIf(lacks('the Redis stream log faults', 'redis-server'))(
  'an attach that fails halfway leaves nothing subscribed or counted',
  async () => {
    const log = new RedisStreamLog(redis, 60_000, 60_000)
    log.open('stream-0001')
    log.append('stream-0001', 'id: 1\nevent: chunk\ndata: {"text":"a"}\n\n')
    await until(async () => (await admin.llen('gw:s:{stream-0001}:ev')) === 1, 'the event to be stored')
    server.pause()
    try {
      await expect(log.attach('stream-0001', 0, { frames: () => {}, end: () => {} })).rejects.toThrow()
    } finally {
      server.resume()
    }
    // The subscription Redis took late is undone by the unsubscribe sent after it, and no follower is counted.
    await until(async () => {
      const [, subscribers] = (await admin.pubsub('NUMSUB', 'gw:s:{stream-0001}')) as [string, number]
      return subscribers === 0
    }, 'no subscriber to be left')
    expect(await admin.get('gw:s:{stream-0001}:followers')).toBeNull()
    expect(await log.followed('stream-0001')).toBe(false)
  }
)

const frame = (id: number) => `id: ${id}\nevent: chunk\ndata: {"text":"${id}"}\n\n`
const idsIn = (batches: string[]) => [...batches.join('').matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))

test.skipIf(lacks('the Redis stream log order', 'redis-server', 'redis-cli'))(
  "a Cluster client's first writes keep each stream in order: a resume replays every event, then the end",
  async () => {
    const cluster: TestRedisCluster = await startRedisCluster()
    const quiet = { state: () => {}, error: () => {} }
    // A fresh replica: its connections to the cluster's nodes start while these streams are written.
    const producer = await connectRedis({ url: cluster.url, mode: 'cluster', commandTimeoutMs: 1_000 }, quiet)
    const reader = await connectRedis({ url: cluster.url, mode: 'cluster', commandTimeoutMs: 1_000 }, quiet)
    const direct = adminClient(cluster.url, 'cluster')
    try {
      const log = new RedisStreamLog(producer, 60_000, 60_000)
      const streams = Array.from({ length: 30 }, (_, i) => `order-${i}-of-30`)
      const all = Array.from({ length: 8 }, (_, k) => k + 1)
      // As a replica streams: the owner and the first event in one tick, the next ones a little apart.
      for (const n of all) {
        for (const id of streams) {
          if (n === 1) log.open(id)
          log.append(id, frame(n))
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      for (const id of streams) void log.end(id, 'event: done\ndata: {}\n\n', all.length)
      await until(
        async () => (await Promise.all(streams.map((id) => direct.exists(`gw:s:{${id}}:end`)))).every((n) => n === 1),
        'every end to be stored'
      )

      const follower = new RedisStreamLog(reader, 60_000, 60_000)
      for (const id of streams) {
        expect(idsIn(await direct.lrange(`gw:s:{${id}}:ev`, 0, -1))).toEqual(all)
        const replayed: string[] = []
        let end = ''
        await follower.attach(id, 0, { frames: (f) => replayed.push(f), end: (t) => (end = t) })
        expect(idsIn(replayed)).toEqual(all)
        expect(end).toMatch(/^event: done/)
      }
    } finally {
      direct.disconnect()
      await reader.close()
      await producer.close()
      await cluster.stop()
    }
  }
)

const DONE = 'event: done\ndata: {}\n\n'

/** A sink that records the ids it was sent and its terminal event. */
function recorder() {
  const sink = {
    ids: [] as number[],
    terminal: undefined as string | undefined,
    frames: (f: string) => sink.ids.push(...idsIn([f])),
    end: (t: string) => (sink.terminal = t)
  }
  return sink
}
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1)

/** A second replica's connections: a follower on another replica than the producer. */
async function otherReplica(): Promise<SharedRedis> {
  return connectRedis({ url: server.url, mode: 'standalone', commandTimeoutMs: 300 }, { state: () => {}, error: () => {} })
}

test.skipIf(lacks('the Redis stream log end record', 'redis-server'))(
  'a late resume of a stream whose tail Redis lacks ends with stream_lost, never done short; an end record without a last id ends as before',
  async () => {
    const log = new RedisStreamLog(redis, 60_000, 60_000)
    log.open('tail-00001')
    // One batch each, so that Redis can lack the last alone.
    for (const n of upTo(8)) {
      log.append('tail-00001', frame(n))
      await until(async () => (await admin.llen('gw:s:{tail-00001}:ev')) === n, `event ${n} to be stored`)
    }
    void log.end('tail-00001', DONE, 8)
    await until(async () => (await admin.exists('gw:s:{tail-00001}:end')) === 1, 'the end to be stored')
    expect(await admin.get('gw:s:{tail-00001}:end')).toBe(`last: 8\n${DONE}`)
    const whole = recorder()
    await new RedisStreamLog(redis, 60_000, 60_000).attach('tail-00001', 0, whole)
    expect(whole.ids).toEqual(upTo(8))
    expect(whole.terminal).toBe(DONE)

    // What a Redis that missed the last writes holds: the end, not every event before it.
    await admin.rpop('gw:s:{tail-00001}:ev')
    for (const afterId of [0, 5]) {
      const short = recorder()
      await new RedisStreamLog(redis, 60_000, 60_000).attach('tail-00001', afterId, short)
      expect(short.ids).toEqual(upTo(7).filter((n) => n > afterId))
      expect(short.terminal).toMatch(/"code":"stream_lost"/)
    }
    // The client already has the tail: the end is all it needs.
    const ahead = recorder()
    await new RedisStreamLog(redis, 60_000, 60_000).attach('tail-00001', 8, ahead)
    expect(ahead.terminal).toBe(DONE)

    // Written by a replica from before the end carried the last id: read as the terminal event alone.
    await admin.set('gw:s:{tail-00001}:end', DONE)
    const old = recorder()
    await new RedisStreamLog(redis, 60_000, 60_000).attach('tail-00001', 0, old)
    expect(old.ids).toEqual(upTo(7))
    expect(old.terminal).toBe(DONE)
  }
)

test.skipIf(lacks('the Redis stream log end record', 'redis-server'))(
  'a live follower that gets the end while it holds fewer events than it names reads the list, then ends with stream_lost when Redis lacks them',
  async () => {
    const producer = new RedisStreamLog(redis, 60_000, 60_000)
    producer.open('short-0001')
    for (const n of upTo(3)) producer.append('short-0001', frame(n))
    const replica = await otherReplica()
    try {
      const sink = recorder()
      await new RedisStreamLog(replica, 60_000, 60_000).attach('short-0001', 0, sink)
      await until(() => sink.ids.length === 3, 'the first events')
      // Events 4-6 never reached Redis (it was away); the end, kept, did.
      const record = `last: 6\n${DONE}`
      await admin.set('gw:s:{short-0001}:end', record)
      await admin.publish('gw:s:{short-0001}', `\u0000${record}`)
      await until(() => sink.terminal !== undefined, 'the follower to end')
      expect(sink.ids).toEqual(upTo(3))
      expect(sink.terminal).toMatch(/"code":"stream_lost"/)
    } finally {
      await replica.close()
    }
  }
)

test.skipIf(lacks('the Redis stream log over lossy pub/sub', 'redis-server'))(
  'a follower whose subscriber is away when the stream ends reads the end from Redis: every event, then done',
  async () => {
    const producer = new RedisStreamLog(redis, 60_000, 60_000)
    producer.open('deaf-00001')
    for (const n of upTo(3)) producer.append('deaf-00001', frame(n))
    const replica = await otherReplica()
    try {
      const sink = recorder()
      await new RedisStreamLog(replica, 60_000, 60_000).attach('deaf-00001', 0, sink)
      await until(() => sink.ids.length === 3, 'the first events')
      replica.subscriber.disconnect() // and it stays away: only the follower's own checks can see the rest
      for (const n of [4, 5, 6]) producer.append('deaf-00001', frame(n))
      void producer.end('deaf-00001', DONE, 6)
      await until(() => sink.terminal !== undefined, 'the follower to end')
      expect(sink.ids).toEqual(upTo(6))
      expect(sink.terminal).toBe(DONE)
    } finally {
      await replica.close()
    }
  }
)

test.skipIf(lacks('the Redis stream log over lossy pub/sub', 'redis-server'))(
  'a follower whose subscriber reconnected mid-stream catches up from the list instead of calling the hole stream_lost',
  async () => {
    const producer = new RedisStreamLog(redis, 60_000, 60_000)
    producer.open('hole-00001')
    for (const n of upTo(3)) producer.append('hole-00001', frame(n))
    const replica = await otherReplica()
    try {
      const sink = recorder()
      await new RedisStreamLog(replica, 60_000, 60_000).attach('hole-00001', 0, sink)
      await until(() => sink.ids.length === 3, 'the first events')
      replica.subscriber.disconnect()
      for (const n of [4, 5]) producer.append('hole-00001', frame(n))
      await until(async () => idsIn(await admin.lrange('gw:s:{hole-00001}:ev', 0, -1)).includes(5), 'events 4-5 to be stored')
      await replica.subscriber.connect()
      await until(async () => {
        const [, subscribers] = (await admin.pubsub('NUMSUB', 'gw:s:{hole-00001}')) as [string, number]
        return subscribers === 1
      }, 'the subscription to be back')
      for (const n of [6, 7]) producer.append('hole-00001', frame(n))
      void producer.end('hole-00001', DONE, 7)
      await until(() => sink.terminal !== undefined, 'the follower to end')
      expect(sink.ids).toEqual(upTo(7))
      expect(sink.terminal).toBe(DONE)
    } finally {
      await replica.close()
    }
  }
)

test.skipIf(lacks('the Redis stream log tenants', 'redis-server'))(
  'a stream bound to a tenant is unknown in Redis to every other one, and to none while it is live, ended or gone',
  async () => {
    const producer = new RedisStreamLog(redis, 60_000, 60_000)
    producer.open('bound-0001', 'key:aaaa')
    producer.append('bound-0001', frame(1))
    await until(async () => (await admin.llen('gw:s:{bound-0001}:ev')) === 1, 'the event to be stored')
    const reader = new RedisStreamLog(redis, 60_000, 60_000)
    for (const other of ['key:bbbb', undefined]) expect((await reader.attach('bound-0001', 0, recorder(), other)).kind).toBe('unknown')
    expect(await admin.get('gw:s:{bound-0001}:followers')).toBeNull()
    void producer.end('bound-0001', DONE, 1)
    await until(async () => (await admin.exists('gw:s:{bound-0001}:end')) === 1, 'the end to be stored')
    const own = recorder()
    expect((await reader.attach('bound-0001', 0, own, 'key:aaaa')).kind).toBe('attached')
    expect(own.ids).toEqual([1])
    expect((await reader.attach('bound-0001', 0, recorder(), 'key:bbbb')).kind).toBe('unknown')
    // Gone: 204 for its tenant, unknown to another.
    await admin.del('gw:s:{bound-0001}:ev', 'gw:s:{bound-0001}:end', 'gw:s:{bound-0001}:owner')
    expect((await reader.attach('bound-0001', 0, recorder(), 'key:aaaa')).kind).toBe('gone')
    expect((await reader.attach('bound-0001', 0, recorder(), 'key:bbbb')).kind).toBe('unknown')
  }
)

test.skipIf(lacks('the Redis stream log attach', 'redis-server'))(
  'an attach whose owner check fails after the replay stays attached and follows to the end, never half open',
  async () => {
    const producer = new RedisStreamLog(redis, 60_000, 60_000)
    producer.open('blind-0001')
    for (const n of upTo(3)) producer.append('blind-0001', frame(n))
    await until(async () => idsIn(await admin.lrange('gw:s:{blind-0001}:ev', 0, -1)).includes(3), 'the first events to be stored')
    const replica = await otherReplica()
    try {
      // Redis stops answering right after the replay was read: the owner check cannot say.
      let checks = 0
      const blind: SharedRedis = Object.create(replica, {
        isAlive: {
          value: async (id: string) => {
            if (checks++ === 0) throw new Error('Command timed out')
            return replica.isAlive(id)
          }
        }
      })
      const sink = recorder()
      expect((await new RedisStreamLog(blind, 60_000, 60_000).attach('blind-0001', 0, sink)).kind).toBe('attached')
      expect(sink.ids).toEqual(upTo(3))
      for (const n of [4, 5]) producer.append('blind-0001', frame(n))
      void producer.end('blind-0001', DONE, 5)
      await until(() => sink.terminal !== undefined, 'the follower to end')
      expect(sink.ids).toEqual(upTo(5))
      expect(sink.terminal).toBe(DONE)
    } finally {
      await replica.close()
    }
  }
)

test.skipIf(lacks('the Redis stream log end', 'redis-server'))(
  "a stream's end settles only once Redis holds it, so a client that saw its terminal event finds the whole stream on any replica",
  async () => {
    const log = new RedisStreamLog(redis, 60_000, 60_000)
    log.open('held-00001')
    log.append('held-00001', frame(1))
    await until(async () => (await admin.llen('gw:s:{held-00001}:ev')) === 1, 'the event to be stored')
    // Redis holds every write back for a while (reads go on), shorter than the command timeout.
    await admin.call('CLIENT', 'PAUSE', '200', 'WRITE')
    const stored = log.end('held-00001', DONE, 1).then(() => admin.get('gw:s:{held-00001}:end'))
    expect(await stored).toBe(`last: 1\n${DONE}`)
  }
)
