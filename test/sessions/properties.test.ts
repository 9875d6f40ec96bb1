// The session stores against a model, on random sequences of create / begin / commit / release by
// random tenants (two API keys, two addresses) on two replicas; for Redis, with the server hung
// (SIGSTOP) under random operations and resumed. After every step:
//   - a tenant never reads another key's session: it gets session_not_found, as for no session;
//   - a begin gets session_busy only while a turn holds the session, and what it reads is the
//     tail of what was committed, the last turn whole, opening with a user message;
//   - a session in a turn is never evicted;
//   - memory: the estimated bytes stay within SESSION_MAX_BYTES (but for sessions in a turn);
//   - Redis, once it answers and every lock write is confirmed: the locks it holds are exactly the
//     turns in progress, none held by nobody.
import fc from 'fast-check'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { Content } from '../../src/protocol.js'
import { MemorySessionStore } from '../../src/sessions/memory-store.js'
import { RedisSessionStore } from '../../src/sessions/redis-store.js'
import { ownerOf, sessionBytesBound, type SessionStore } from '../../src/sessions/store.js'
import { connectRedis, type SharedRedis } from '../../src/shared/redis.js'
import type { GatewayError } from '../../src/errors.js'
import { until } from '../helpers/gateway.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { lacks } from '../helpers/system.js'

const TENANTS = ['key:aaaaaaaaaaaaaaaa', 'key:bbbbbbbbbbbbbbbb', 'ip:10.0.0.1', 'ip:10.0.0.2']

type Op =
  | { kind: 'create'; replica: number; tenant: number }
  | { kind: 'begin'; replica: number; session: number; tenant: number; asCreator: boolean }
  | { kind: 'commit'; session: number; user: number; model: number }
  | { kind: 'release'; session: number }

interface Step {
  /** Redis hung while these run (one at a time otherwise). */
  stall: boolean
  ops: Op[]
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('create' as const), replica: fc.nat(1), tenant: fc.nat(3) }),
  fc.record({ kind: fc.constant('begin' as const), replica: fc.nat(1), session: fc.nat(), tenant: fc.nat(3), asCreator: fc.boolean() }),
  fc.record({ kind: fc.constant('commit' as const), session: fc.nat(), user: fc.nat(3_000), model: fc.nat(3_000) }),
  fc.record({ kind: fc.constant('release' as const), session: fc.nat() })
)
const steps = (stalls: boolean, maxLength: number) =>
  fc.array(
    stalls
      ? fc.oneof(
          { weight: 5, arbitrary: opArb.map((op): Step => ({ stall: false, ops: [op] })) },
          { weight: 2, arbitrary: fc.array(opArb, { minLength: 1, maxLength: 3 }).map((ops): Step => ({ stall: true, ops })) }
        )
      : opArb.map((op): Step => ({ stall: false, ops: [op] })),
    { minLength: 1, maxLength }
  )

interface Modelled {
  id: string
  creator: string
  owner: string | undefined
  /** Every content committed, in order. */
  contents: Content[]
  /** The replica whose turn holds it. */
  heldBy: number | undefined
  /** Evicted (LRU, SESSION_MAX, bytes): it never comes back. */
  gone: boolean
}

interface World {
  replicas: SessionStore[]
  /** Hangs the store while `run` runs, then lets it answer again. */
  stall?(run: () => Promise<void>): Promise<void>
  /** Waits until every replica's store answers and has no lock write unconfirmed. */
  settle?(): Promise<void>
  /** The sessions whose turn lock the store holds. */
  locks?(): Promise<string[]>
  /** Checked after every step. */
  check?(held: number): void
}

const codeOf = (err: unknown) => (err as GatewayError).code

const said = (role: Content['role'], n: number, size: number): Content => ({ role, parts: [{ text: `${role}${n} ${'z'.repeat(size)}` }] })

/** Runs `steps` against the world and the model together; throws on the first disagreement. */
async function run(world: World, plan: Step[]): Promise<void> {
  const sessions: Modelled[] = []
  let turns = 0
  const heldSessions = () => sessions.filter((s) => s.heldBy !== undefined)

  /** Resolves an op against the model; returns what to run and what the answer must be. */
  const prepare = (op: Op, stalled: boolean): (() => Promise<void>) | undefined => {
    switch (op.kind) {
      case 'create':
        return async () => {
          const tenant = TENANTS[op.tenant]!
          try {
            const id = await world.replicas[op.replica]!.create(tenant)
            expect(stalled, 'a create succeeded while Redis hung').toBe(false)
            sessions.push({ id, creator: tenant, owner: ownerOf(tenant), contents: [], heldBy: op.replica, gone: false })
          } catch (err) {
            expect(codeOf(err)).toBe('store_unavailable')
          }
        }
      case 'begin': {
        const s = sessions[op.session % Math.max(1, sessions.length)]
        if (!s) return undefined
        const tenant = op.asCreator ? s.creator : TENANTS[op.tenant]!
        const allowed = s.owner === undefined || s.owner === tenant
        return async () => {
          let read: Content[]
          try {
            read = await world.replicas[op.replica]!.begin(s.id, tenant)
          } catch (err) {
            const code = codeOf(err)
            if (code === 'store_unavailable') return
            expect(stalled, `${code} while Redis hung`).toBe(false)
            if (!allowed) {
              expect(code, "another key's session").toBe('session_not_found')
              return
            }
            if (code === 'session_busy') {
              expect(s.heldBy, 'busy with no turn in progress').not.toBeUndefined()
              return
            }
            expect(code).toBe('session_not_found')
            expect(s.heldBy, 'a session in a turn was evicted').toBeUndefined()
            s.gone = true
            return
          }
          expect(stalled, 'a begin succeeded while Redis hung').toBe(false)
          expect(allowed, "a tenant read another key's session").toBe(true)
          expect(s.gone, 'an evicted session came back').toBe(false)
          expect(s.heldBy, 'two turns at once').toBeUndefined()
          s.heldBy = op.replica
          // The tail of what was committed, the last turn whole, opening with a user message.
          expect(s.contents.slice(s.contents.length - read.length)).toEqual(read)
          if (s.contents.length > 0) expect(read.slice(-2)).toEqual(s.contents.slice(-2))
          if (read.length > 0) expect(read[0]).toMatchObject({ role: 'user', parts: [{ text: expect.any(String) }] })
        }
      }
      case 'commit':
      case 'release': {
        const held = heldSessions()
        const s = held[op.session % Math.max(1, held.length)]
        if (!s) return undefined
        const replica = world.replicas[s.heldBy!]!
        // The model moves now: a commit or release never fails, it is sent when Redis answers.
        s.heldBy = undefined
        if (op.kind === 'release') return () => replica.release(s.id)
        const pair = [said('user', ++turns, op.user), said('model', turns, op.model)] as const
        s.contents.push(...pair)
        return () => replica.commit(s.id, pair)
      }
    }
  }

  const checkLocks = async () => {
    if (!world.locks) return
    await world.settle?.()
    expect((await world.locks()).sort(), 'locks held by nobody, or turns without their lock').toEqual(
      heldSessions()
        .map((s) => s.id)
        .sort()
    )
  }

  for (const step of plan) {
    if (step.stall && world.stall) {
      const runs = step.ops.map((op) => prepare(op, true)).filter((r) => r !== undefined)
      await world.stall(async () => {
        await Promise.all(runs.map((r) => r()))
      })
    } else {
      for (const op of step.ops) {
        await world.settle?.()
        await prepare(op, false)?.()
      }
    }
    await checkLocks()
    world.check?.(heldSessions().length)
  }
  // Every turn ends: nothing may stay locked.
  for (const s of heldSessions()) {
    await world.replicas[s.heldBy!]!.release(s.id)
    s.heldBy = undefined
  }
  await checkLocks()
}

describe('memory store, property', () => {
  test('random turns by random tenants: no foreign read, no lost lock, never past its bytes', async () => {
    const maxBytes = 48 << 10
    // Every session, one turn in it more than its share, and the overhead of a session.
    const most = (held: number) => Math.max(maxBytes, (held + 1) * (sessionBytesBound(maxBytes) + 512))
    await fc.assert(
      fc.asyncProperty(steps(false, 40), async (plan) => {
        const store = new MemorySessionStore({ ttlMs: 60_000, max: 6, maxTurns: 8, maxBytes })
        await run(
          {
            replicas: [store, store],
            check: (held) => expect(store.bytes).toBeLessThanOrEqual(most(held))
          },
          plan
        )
        expect(store.bytes).toBeLessThanOrEqual(maxBytes)
      }),
      { numRuns: 150 }
    )
  })
})

describe.skipIf(lacks('the Redis store property', 'redis-server'))('redis store, property', () => {
  let server: TestRedis
  let admin: Redis
  const replicas: { redis: SharedRedis; store: RedisSessionStore }[] = []
  beforeAll(async () => {
    server = await startRedis()
    admin = new Redis(server.url)
    for (let i = 0; i < 2; i++) {
      const redis = await connectRedis({ url: server.url, mode: 'standalone', commandTimeoutMs: 250 }, { state: () => {}, error: () => {} })
      const store = new RedisSessionStore(redis, {
        ttlMs: 60_000,
        maxTurns: 8,
        max: 6,
        sessionMaxBytes: 12_000,
        // No lease ends within a run: a lock that stays is one nobody released.
        leaseMs: 60_000,
        maxHoldMs: 120_000
      })
      replicas.push({ redis, store })
    }
  })
  afterAll(async () => {
    for (const { redis, store } of replicas) {
      await store.close()
      await redis.close()
    }
    admin?.disconnect()
    await server?.stop()
  })

  test('random turns by random tenants, Redis hung at random moments: no foreign read, no lock held by nobody', async () => {
    const world: World = {
      replicas: replicas.map((r) => r.store),
      async stall(ops) {
        server.pause()
        try {
          await ops()
        } finally {
          server.resume()
        }
      },
      settle: () => until(() => replicas.every((r) => r.redis.up && r.store.pending === 0), 'Redis to answer, every lock write confirmed'),
      locks: async () => (await admin.keys('gw:sess:*:lock')).map((k) => /\{(.+)\}/.exec(k)![1]!)
    }
    await fc.assert(
      fc.asyncProperty(steps(true, 12), (plan) => run(world, plan)),
      { numRuns: 15 }
    )
  })
})
