// The session contract, run against both stores: what one replica does in memory, every replica
// does through Redis. Time is moved, never waited for: the memory store reads an injected clock,
// and Redis's own expiry is moved by taking the same amount off every session key's TTL.
import { Cluster, type Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { MemorySessionStore } from '../../src/sessions/memory-store.js'
import { RedisSessionStore, type RedisLimits } from '../../src/sessions/redis-store.js'
import type { Content } from '../../src/protocol.js'
import type { SessionStore } from '../../src/sessions/store.js'
import { connectRedis, type RedisEvents, type SharedRedis } from '../../src/shared/redis.js'
import { adminClient, startRedis, startRedisCluster, type TestRedis, type TestRedisCluster } from '../helpers/redis.js'
import { lacks } from '../helpers/system.js'
import type { GatewayError } from '../../src/errors.js'
import { until } from '../helpers/gateway.js'

const TTL_MS = 60_000

const said = (role: Content['role'], text: string): Content => ({ role, parts: [{ text }] })
const turn = (user: string, model: string) => [said('user', user), said('model', model)] as const
const MAX_TURNS = 4
const REDIS_LIMITS: RedisLimits = {
  ttlMs: TTL_MS,
  maxTurns: MAX_TURNS,
  max: 1_000,
  sessionMaxBytes: 8 << 20,
  leaseMs: 10_000,
  maxHoldMs: 60_000
}
/** Tenants: without API keys a tenant is an address; with them, a key's digest. */
const IP = 'ip:127.0.0.1'
const KEY_A = 'key:aaaaaaaaaaaaaaaa'
const KEY_B = 'key:bbbbbbbbbbbbbbbb'

interface Stores {
  /** A store as one replica sees it; stores made by one `Stores` share their state. */
  replica(limits?: Partial<RedisLimits>): Promise<SessionStore>
  /** Lets `ms` pass for every session's expiry. */
  advance(ms: number): Promise<void>
  close(): Promise<void>
  /** The shared Redis, for a redis store's own tests. */
  url?: string
  /** SIGSTOP and SIGCONT for the (single) server. */
  server?: TestRedis | TestRedisCluster
  /** The test's own client of that Redis. */
  admin?: Redis | Cluster
  /** The Redis store of a replica made by `replica`, with its connection. */
  shared?: Map<SessionStore, { store: RedisSessionStore; redis: SharedRedis }>
}

function memoryStores(): Stores {
  let now = 1_000_000
  const store = new MemorySessionStore({ ttlMs: TTL_MS, max: 1_000, maxTurns: MAX_TURNS, maxBytes: 64 << 20 }, () => now)
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
  const shared = new Map<SessionStore, { store: RedisSessionStore; redis: SharedRedis }>()
  return {
    url: server.url,
    server,
    admin,
    shared,
    async replica(limits = {}) {
      const redis = await connectRedis({ url: server.url, mode, commandTimeoutMs: 1_000 }, quiet)
      const store = new RedisSessionStore(redis, { ...REDIS_LIMITS, ...limits })
      shared.set(store, { store, redis })
      return store
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
      for (const { store, redis } of shared.values()) {
        await store.close()
        await redis.close()
      }
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

  test("a session made with an API key is that key's: to any other tenant it does not exist, and its lock is not touched", async () => {
    const a = await replica()
    const b = await replica()
    const id = await a.create(KEY_A)
    await a.commit(id, turn('mine', 'reply'))
    const unknown = (await b.begin('never-existed-5678', KEY_B).catch((e: unknown) => e)) as Error
    const foreign = (await b.begin(id, KEY_B).catch((e: unknown) => e)) as Error
    expect(foreign).toMatchObject({ code: 'session_not_found', statusCode: 404, message: unknown.message })
    await expect(b.begin(id, IP)).rejects.toMatchObject({ code: 'session_not_found' })
    // The attempts took no lock: the owner goes on at once, on any replica.
    expect(await a.begin(id, KEY_A)).toEqual(turn('mine', 'reply'))
    // While the owner's turn runs, the session still does not exist for another key (not busy).
    await expect(b.begin(id, KEY_B)).rejects.toMatchObject({ code: 'session_not_found' })
    await a.commit(id, turn('again', 'reply two'))
    expect(await b.begin(id, KEY_A)).toEqual([...turn('mine', 'reply'), ...turn('again', 'reply two')])
    await b.release(id)
  })

  test('without API keys the id is the secret: another address may continue the session', async () => {
    const a = await replica()
    const id = await a.create(IP)
    await a.commit(id, turn('from home', 'hi'))
    const b = await replica()
    expect(await b.begin(id, 'ip:10.1.2.3')).toEqual(turn('from home', 'hi'))
    await b.release(id)
  })

  test('a new session is locked for its first turn; commit appends the turn and unlocks', async () => {
    const a = await replica()
    const id = await a.create(IP)
    await expect((await replica()).begin(id, IP)).rejects.toMatchObject({ code: 'session_busy' })
    await a.commit(id, turn('hello', 'hi there'))
    const b = await replica()
    expect(await b.begin(id, IP)).toEqual(turn('hello', 'hi there'))
    await b.release(id)
  })

  test('one turn at a time, across replicas; a failed turn appends nothing', async () => {
    const a = await replica()
    const b = await replica()
    const id = await a.create(IP)
    await a.commit(id, turn('one', 'reply one'))
    expect(await a.begin(id, IP)).toHaveLength(2)
    await expect(b.begin(id, IP)).rejects.toMatchObject({ code: 'session_busy', statusCode: 409 })
    await a.release(id)
    expect(await b.begin(id, IP)).toEqual(turn('one', 'reply one'))
    await b.release(id)
  })

  test('only the last SESSION_MAX_TURNS turns are kept', async () => {
    const s = await replica()
    const id = await s.create(IP)
    await s.commit(id, turn('u1', 'm1'))
    for (const n of [2, 3]) {
      await s.begin(id, IP)
      await s.commit(id, turn(`u${n}`, `m${n}`))
    }
    expect((await s.begin(id, IP)).map((t) => t.parts[0]?.text)).toEqual(['u2', 'm2', 'u3', 'm3'])
    await s.release(id)
  })

  test('an unknown session is session_not_found; an idle one expires SESSION_TTL_MS after its last use', async () => {
    const s = await replica()
    await expect(s.begin('never-existed-1234', IP)).rejects.toMatchObject({ code: 'session_not_found', statusCode: 404 })
    const id = await s.create(IP)
    await s.commit(id, turn('u', 'm'))
    await stores.advance(TTL_MS - 1_000)
    await s.begin(id, IP) // use refreshes the TTL
    await s.release(id)
    await stores.advance(TTL_MS - 1_000)
    expect(await s.begin(id, IP)).toHaveLength(2)
    await s.release(id)
    await stores.advance(TTL_MS + 1)
    await expect(s.begin(id, IP)).rejects.toMatchObject({ code: 'session_not_found' })
  })
  test('a tool turn is kept part for part, signatures included; trimming never leaves results without their calls', async () => {
    const s = await replica()
    const id = await s.create(IP)
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
    await s.begin(id, IP)
    await s.commit(id, [results, said('model', 'It is 9:30.')])
    expect(await s.begin(id, IP)).toEqual([said('user', 'what time?'), call, results, said('model', 'It is 9:30.')])
    // MAX_TURNS (4) drops the oldest pair; what is left must not open with a results turn.
    await s.commit(id, turn('next', 'reply'))
    expect(await s.begin(id, IP)).toEqual(turn('next', 'reply'))
    await s.release(id)
  })
  return () => stores
}

describe('memory store', () => {
  contract(memoryStores)

  /** A turn of about `bytes` bytes of text, user and model alike. */
  const sized = (n: number, bytes: number) => turn(`u${n} ${'x'.repeat(bytes)}`, `m${n} ${'y'.repeat(bytes)}`)

  test('past SESSION_MAX_BYTES the least recently used sessions go, never one in a turn', async () => {
    const maxBytes = 64 << 10
    const store = new MemorySessionStore({ ttlMs: TTL_MS, max: 1_000, maxTurns: 100, maxBytes })
    const oldest = await store.create(IP)
    await store.commit(oldest, sized(0, 2_000))
    const busy = await store.create(IP)
    await store.commit(busy, sized(0, 2_000))
    await store.begin(busy, IP) // its turn runs while the others come
    const ids: string[] = []
    for (let n = 1; n <= 20; n++) {
      const id = await store.create(IP)
      await store.commit(id, sized(n, 2_000))
      ids.push(id)
      expect(store.bytes).toBeLessThanOrEqual(maxBytes)
    }
    await expect(store.begin(oldest, IP)).rejects.toMatchObject({ code: 'session_not_found' })
    await store.commit(busy, sized(1, 10)) // still there: its turn is kept
    expect((await store.begin(busy, IP)).map((c) => c.parts[0]?.text?.slice(0, 2))).toEqual(['u0', 'm0', 'u1', 'm1'])
    await store.release(busy)
    // The most recent are there.
    expect(await store.begin(ids.at(-1)!, IP)).toHaveLength(2)
    await store.release(ids.at(-1)!)
  })

  test('a session past its share of the bytes drops its oldest turns, and still starts with a user message', async () => {
    const maxBytes = 64 << 10 // a session keeps 16 KiB
    const store = new MemorySessionStore({ ttlMs: TTL_MS, max: 1_000, maxTurns: 100, maxBytes })
    const id = await store.create(IP)
    await store.commit(id, sized(0, 3_000))
    for (let n = 1; n < 10; n++) {
      await store.begin(id, IP)
      await store.commit(id, sized(n, 3_000))
    }
    const kept = (await store.begin(id, IP)).map((c) => c.parts[0]?.text?.slice(0, 2))
    expect(kept).toEqual(['u8', 'm8', 'u9', 'm9'])
    // A tool result whose call was dropped never opens the conversation.
    const call: Content = {
      role: 'model',
      parts: [{ functionCall: { name: 'f', args: { q: 'z'.repeat(7_000) }, id: 'gwc_BBBBBBBBBBBBBBBB' } }]
    }
    const result: Content = {
      role: 'user',
      parts: [{ functionResponse: { name: 'f', response: { ok: true }, id: 'gwc_BBBBBBBBBBBBBBBB' } }]
    }
    await store.commit(id, [said('user', 'call f'), call])
    await store.begin(id, IP)
    await store.commit(id, [result, said('model', 'done '.repeat(1_400))])
    await store.begin(id, IP)
    await store.commit(id, sized(10, 3_000))
    const after = await store.begin(id, IP)
    expect(after[0]).toMatchObject({ role: 'user', parts: [{ text: expect.any(String) }] })
    expect(after.at(-1)?.parts[0]?.text?.slice(0, 3)).toBe('m10')
    expect(store.bytes).toBeLessThanOrEqual(16 << 10)
    await store.release(id)
  })
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
      const id = await a.create(IP)
      await b.release(id)
      await expect(b.begin(id, IP)).rejects.toMatchObject({ code: 'session_busy' })
      await a.release(id)
    })

    test('past SESSION_MAX the least recently used sessions are deleted, never one in a turn', async () => {
      const s = await stores().replica({ max: 3 })
      const first = await s.create(IP)
      await s.commit(first, turn('first', 'one'))
      const busy = await s.create(IP) // its first turn runs while the others come
      const rest: string[] = []
      for (let n = 0; n < 3; n++) {
        const id = await s.create(IP)
        await s.commit(id, turn(`u${n}`, `m${n}`))
        rest.push(id)
      }
      await until(async () => {
        try {
          await s.begin(first, IP)
          await s.release(first)
          return false
        } catch (err) {
          return (err as GatewayError).code === 'session_not_found'
        }
      }, 'the least recently used session to be deleted')
      await s.commit(busy, turn('busy', 'kept'))
      expect(await s.begin(busy, IP)).toEqual(turn('busy', 'kept'))
      await s.release(busy)
      expect(await s.begin(rest.at(-1)!, IP)).toEqual(turn('u2', 'm2'))
      await s.release(rest.at(-1)!)
    })

    test('a session keeps at most its bytes: the oldest turns are dropped', async () => {
      // A content here is 37..40 bytes of JSON: 200 bytes keep the last two turns, whatever SESSION_MAX_TURNS.
      const s = await stores().replica({ maxTurns: 100, sessionMaxBytes: 200 })
      const id = await s.create(IP)
      await s.commit(id, turn('u1', 'm1'))
      for (const n of [2, 3, 4, 5]) {
        await s.begin(id, IP)
        await s.commit(id, turn(`u${n}`, `m${n}`))
      }
      expect((await s.begin(id, IP)).map((t) => t.parts[0]?.text)).toEqual(['u4', 'm4', 'u5', 'm5'])
      await s.release(id)
    })

    test("the lease is renewed while its holder lives; a dead holder's lock expires after one lease", async () => {
      const a = await stores().replica({ leaseMs: 300 })
      const b = await stores().replica()
      const id = await a.create(IP)
      const admin = stores().admin!
      // Each renewal puts the lock's TTL back up to the lease: see three, well past one lease.
      let renewals = 0
      let last = await admin.pttl(`gw:sess:{${id}}:lock`)
      await until(async () => {
        const left = await admin.pttl(`gw:sess:{${id}}:lock`)
        if (left > last) renewals++
        last = left
        return renewals >= 3
      }, 'three renewals of the lease')
      await expect(b.begin(id, IP)).rejects.toMatchObject({ code: 'session_busy' })
      await a.close() // no more renewals: the replica is gone
      await until(async () => {
        try {
          await b.begin(id, IP)
          return true
        } catch {
          return false
        }
      }, 'the lease to expire')
      await b.release(id)
    })
  }
)

describe.skipIf(lacks('the Redis session store faults', 'redis-server'))('redis store, faulted', () => {
  const stores = contract(() => redisStores('standalone'))
  const replica = () => stores().replica()

  test('a hung Redis is store_unavailable for the turn, and a commit is sent once it answers', async () => {
    const server = stores().server as TestRedis
    const s = await replica()
    const id = await s.create(IP)
    server.pause()
    try {
      await expect(s.begin(id, IP)).rejects.toMatchObject({ code: 'store_unavailable', statusCode: 503, retryAfterS: 1 })
      await s.commit(id, turn('kept', 'for later')) // never rejects
    } finally {
      server.resume()
    }
    await until(async () => {
      const other = await replica()
      try {
        await other.begin(id, IP)
      } catch {
        return false
      }
      await other.release(id)
      return true
    }, 'the session to be free with its turn in it')
    const t = await replica()
    expect(await t.begin(id, IP)).toEqual(turn('kept', 'for later'))
    await t.release(id)
  })

  test('a lock write that timed out while Redis hung is undone when it answers: no session is left locked by nobody', async () => {
    const server = stores().server as TestRedis
    const admin = stores().admin!
    const a = await replica()
    const { redis, store } = stores().shared!.get(a)!
    const b = await replica()
    const id = await a.create(IP)
    await a.commit(id, turn('before', 'the hang'))
    const sessionsBefore = (await admin.keys('gw:sess:*')).filter((k) => !k.includes('}:')).length
    server.pause()
    try {
      // Both are sent, time out, and run when Redis resumes, with tokens nobody keeps.
      await Promise.all([
        expect(a.begin(id, IP)).rejects.toMatchObject({ code: 'store_unavailable' }),
        expect(a.create(IP)).rejects.toMatchObject({ code: 'store_unavailable' })
      ])
    } finally {
      server.resume()
    }
    await until(() => redis.up && store.pending === 0, 'Redis to answer and the undos to be confirmed')
    // Any replica, at once: not session_busy.
    expect(await b.begin(id, IP)).toEqual(turn('before', 'the hang'))
    await b.release(id)
    expect(await admin.keys('gw:sess:*:lock')).toEqual([])
    expect((await admin.keys('gw:sess:*')).filter((k) => !k.includes('}:')).length).toBe(sessionsBefore)
  })
})
