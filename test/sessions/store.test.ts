// The session contract, run against both stores: what one replica does in memory, every replica
// does through Redis.
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { MemorySessionStore } from '../../src/sessions/memory-store.js'
import { RedisSessionStore } from '../../src/sessions/redis-store.js'
import type { SessionStore } from '../../src/sessions/store.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { setTimeout as sleep } from 'node:timers/promises'

const TTL_MS = 400
const MAX_TURNS = 4

describe.each(['memory', 'redis'] as const)('%s store', (kind) => {
  let redis: TestRedis | undefined
  const clients: Redis[] = []
  /** A store as one replica sees it; redis stores made here share one server. */
  let replica: () => SessionStore

  beforeAll(async () => {
    if (kind === 'memory') {
      const store = new MemorySessionStore(TTL_MS, 1_000, MAX_TURNS)
      replica = () => store
      return
    }
    redis = await startRedis()
    replica = () => {
      const client = new Redis(redis!.url)
      clients.push(client)
      return new RedisSessionStore(client, TTL_MS, MAX_TURNS, 10_000)
    }
  })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await redis?.stop()
  })

  test('a new session is locked for its first turn; commit appends the turn and unlocks', async () => {
    const a = replica()
    const id = await a.create()
    await expect(replica().begin(id)).rejects.toMatchObject({ code: 'session_busy' })
    await a.commit(id, 'hello', 'hi there')
    const b = replica()
    expect(await b.begin(id)).toEqual([{ role: 'user', text: 'hello' }, { role: 'model', text: 'hi there' }])
    await b.release(id)
  })

  test('one turn at a time, across replicas; a failed turn appends nothing', async () => {
    const a = replica()
    const b = replica()
    const id = await a.create()
    await a.commit(id, 'one', 'reply one')
    expect(await a.begin(id)).toHaveLength(2)
    await expect(b.begin(id)).rejects.toMatchObject({ code: 'session_busy', statusCode: 409 })
    await a.release(id)
    expect(await b.begin(id)).toEqual([{ role: 'user', text: 'one' }, { role: 'model', text: 'reply one' }])
    await b.release(id)
  })

  test.runIf(kind === 'redis')('a replica cannot release a lock it does not hold', async () => {
    const a = replica()
    const b = replica()
    const id = await a.create()
    await b.release(id)
    await expect(b.begin(id)).rejects.toMatchObject({ code: 'session_busy' })
    await a.release(id)
  })

  test('only the last SESSION_MAX_TURNS turns are kept', async () => {
    const s = replica()
    const id = await s.create()
    await s.commit(id, 'u1', 'm1')
    for (const n of [2, 3]) {
      await s.begin(id)
      await s.commit(id, `u${n}`, `m${n}`)
    }
    expect((await s.begin(id)).map((t) => t.text)).toEqual(['u2', 'm2', 'u3', 'm3'])
    await s.release(id)
  })

  test('an unknown session is session_not_found; an idle one expires after SESSION_TTL_MS from its last use', async () => {
    const s = replica()
    await expect(s.begin('never-existed-1234')).rejects.toMatchObject({ code: 'session_not_found', statusCode: 404 })
    const id = await s.create()
    await s.commit(id, 'u', 'm')
    await sleep(TTL_MS / 2)
    await s.begin(id) // use refreshes the TTL
    await s.release(id)
    await sleep(TTL_MS / 2 + 50)
    expect(await s.begin(id)).toHaveLength(2)
    await s.release(id)
    // Expiry is a matter of time passing: nothing announces it, so the test waits it out.
    await sleep(TTL_MS + 100)
    await expect(s.begin(id)).rejects.toMatchObject({ code: 'session_not_found' })
  })
})
