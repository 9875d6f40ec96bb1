// The session contract, run against both stores: what one replica does in memory, every replica
// does through Redis. Time is moved, never waited for: the memory store reads an injected clock,
// and Redis's own expiry is moved by taking the same amount off every session key's TTL.
import { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { MemorySessionStore } from '../../src/sessions/memory-store.js'
import { RedisSessionStore } from '../../src/sessions/redis-store.js'
import type { Content } from '../../src/protocol.js'
import type { SessionStore } from '../../src/sessions/store.js'
import { connectRedis, type RedisEvents, type SharedRedis } from '../../src/shared/redis.js'
import { adminClient, startRedis, startRedisCluster, type TestRedis, type TestRedisCluster } from '../helpers/redis.js'
import { lacks } from '../helpers/system.js'
import { until } from '../helpers/gateway.js'

const TTL_MS = 60_000

const said = (role: Content['role'], text: string): Content => ({ role, parts: [{ text }] })
const turn = (user: string, model: string) => [said('user', user), said('model', model)] as const
const MAX_TURNS = 4

interface Stores {
  /** A store as one replica sees it; stores made by one `Stores` share their state. */
  replica(): Promise<SessionStore>
  /** Lets `ms` pass for every session's expiry. */
  advance(ms: number): Promise<void>
  close(): Promise<void>
  /** The shared Redis, for a redis store's own tests. */
  url?: string
  /** SIGSTOP and SIGCONT for the (single) server. */
  server?: TestRedis | TestRedisCluster
}

function memoryStores(): Stores {
  let now = 1_000_000
  const store = new MemorySessionStore(TTL_MS, 1_000, MAX_TURNS, () => now)
  return {
    replica: async () => store,
    advance: async (ms) => {
      now += ms
    },
    close: async () => {}
  }
}

const quiet: RedisEvents = { state: () => {}, error: () => {} }

/** Stores of replicas sharing one Redis (a server, or a cluster); each replica has its own connections. */
async function redisStores(mode: 'standalone' | 'cluster'): Promise<Stores> {
  const server: TestRedis | TestRedisCluster = mode === 'cluster' ? await startRedisCluster() : await startRedis()
  const admin = adminClient(server.url, mode)
  const replicas: SharedRedis[] = []
  return {
    url: server.url,
    server,
    async replica() {
      const redis = await connectRedis({ url: server.url, mode, commandTimeoutMs: 1_000 }, quiet)
      replicas.push(redis)
      return new RedisSessionStore(redis, TTL_MS, MAX_TURNS, 10_000)
    },
    async advance(ms) {
      const nodes = admin instanceof Cluster ? admin.nodes('master') : [admin]
      for (const node of nodes) {
        for (const key of await node.keys('gw:sess:*')) {
          const left = await node.pttl(key)
          if (left < 0) continue
          // PEXPIRE with 0 or less deletes the key, exactly as Redis would once the time passed.
          await node.pexpire(key, left - ms)
        }
      }
    },
    async close() {
      for (const r of replicas) await r.close()
      admin.disconnect()
      await server.stop()
    }
  }
}

/** The tests both stores pass; returns the stores, for a store's own tests. */
function contract(make: () => Stores | Promise<Stores>): () => Stores {
  let stores: Stores
  beforeAll(async () => {
    stores = await make()
  })
  afterAll(async () => {
    await stores?.close()
  })
  const replica = () => stores.replica()

  test('a new session is locked for its first turn; commit appends the turn and unlocks', async () => {
    const a = await replica()
    const id = await a.create()
    await expect((await replica()).begin(id)).rejects.toMatchObject({ code: 'session_busy' })
    await a.commit(id, turn('hello', 'hi there'))
    const b = await replica()
    expect(await b.begin(id)).toEqual(turn('hello', 'hi there'))
    await b.release(id)
  })

  test('one turn at a time, across replicas; a failed turn appends nothing', async () => {
    const a = await replica()
    const b = await replica()
    const id = await a.create()
    await a.commit(id, turn('one', 'reply one'))
    expect(await a.begin(id)).toHaveLength(2)
    await expect(b.begin(id)).rejects.toMatchObject({ code: 'session_busy', statusCode: 409 })
    await a.release(id)
    expect(await b.begin(id)).toEqual(turn('one', 'reply one'))
    await b.release(id)
  })

  test('only the last SESSION_MAX_TURNS turns are kept', async () => {
    const s = await replica()
    const id = await s.create()
    await s.commit(id, turn('u1', 'm1'))
    for (const n of [2, 3]) {
      await s.begin(id)
      await s.commit(id, turn(`u${n}`, `m${n}`))
    }
    expect((await s.begin(id)).map((t) => t.parts[0]?.text)).toEqual(['u2', 'm2', 'u3', 'm3'])
    await s.release(id)
  })

  test('an unknown session is session_not_found; an idle one expires SESSION_TTL_MS after its last use', async () => {
    const s = await replica()
    await expect(s.begin('never-existed-1234')).rejects.toMatchObject({ code: 'session_not_found', statusCode: 404 })
    const id = await s.create()
    await s.commit(id, turn('u', 'm'))
    await stores.advance(TTL_MS - 1_000)
    await s.begin(id) // use refreshes the TTL
    await s.release(id)
    await stores.advance(TTL_MS - 1_000)
    expect(await s.begin(id)).toHaveLength(2)
    await s.release(id)
    await stores.advance(TTL_MS + 1)
    await expect(s.begin(id)).rejects.toMatchObject({ code: 'session_not_found' })
  })
  test('a tool turn is kept part for part, signatures included; trimming never leaves results without their calls', async () => {
    const s = await replica()
    const id = await s.create()
    const call: Content = {
      role: 'model',
      parts: [
        { text: 'Let me look.' },
        { functionCall: { name: 'get_time', args: { zone: 'WET' }, id: 'gwc_AAAAAAAAAAAAAAAA' }, thoughtSignature: 'c2lnbmF0dXJl' }
      ]
    }
    const results: Content = {
      role: 'user',
      parts: [{ functionResponse: { name: 'get_time', response: { time: '9:30' }, id: 'gwc_AAAAAAAAAAAAAAAA' } }]
    }
    await s.commit(id, [said('user', 'what time?'), call])
    await s.begin(id)
    await s.commit(id, [results, said('model', 'It is 9:30.')])
    expect(await s.begin(id)).toEqual([said('user', 'what time?'), call, results, said('model', 'It is 9:30.')])
    // MAX_TURNS (4) drops the oldest pair; what is left must not open with a results turn.
    await s.commit(id, turn('next', 'reply'))
    expect(await s.begin(id)).toEqual(turn('next', 'reply'))
    await s.release(id)
  })
  return () => stores
}

describe('memory store', () => {
  contract(memoryStores)
})

describe.skipIf(lacks('the Redis session stores', 'redis-server', 'redis-cli')).each(['standalone', 'cluster'] as const)(
  'redis store (%s)',
  (mode) => {
    const stores = contract(() => redisStores(mode))
    const replica = () => stores().replica()

    // In one process the lock is a flag; across replicas it is a token only its holder knows.
    test('a replica cannot release a lock it does not hold', async () => {
      const a = await replica()
      const b = await replica()
      const id = await a.create()
      await b.release(id)
      await expect(b.begin(id)).rejects.toMatchObject({ code: 'session_busy' })
      await a.release(id)
    })
  }
)

describe.skipIf(lacks('the Redis session store faults', 'redis-server'))('redis store, faulted', () => {
  const stores = contract(() => redisStores('standalone'))
  const replica = () => stores().replica()

  test('a hung Redis is store_unavailable for the turn, and a commit is sent once it answers', async () => {
    const server = stores().server as TestRedis
    const s = await replica()
    const id = await s.create()
    server.pause()
    try {
      await expect(s.begin(id)).rejects.toMatchObject({ code: 'store_unavailable', statusCode: 503, retryAfterS: 1 })
      await s.commit(id, turn('kept', 'for later')) // never rejects
    } finally {
      server.resume()
    }
    await until(async () => {
      const other = await replica()
      try {
        await other.begin(id)
      } catch {
        return false
      }
      await other.release(id)
      return true
    }, 'the session to be free with its turn in it')
    const t = await replica()
    expect(await t.begin(id)).toEqual(turn('kept', 'for later'))
    await t.release(id)
  })
})
