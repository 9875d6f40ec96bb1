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
      for (const id of streams) log.end(id, 'event: done\ndata: {}\n\n')
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
