// The Redis stream log when Redis stops answering halfway through an attach: it throws (the shared
// log then answers store_unavailable) and leaves no subscription, listener or follower count behind.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { RedisStreamLog } from '../../src/resume/redis-log.js'
import { connectRedis, type SharedRedis } from '../../src/shared/redis.js'
import { until } from '../helpers/gateway.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
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
