// A real redis-server shared by two replicas, faulted for real while turns flow: hung (SIGSTOP),
// killed (SIGKILL), and restarted empty. Every answer must be a documented one, no stream in flight
// may be lost, no promise may be left to reject unhandled, and everything must work again once
// Redis answers, with no restart. Recovery times are printed; bench/redis-faults.ts measures them.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { postChat, replyText, terminal, type ChatResult } from './helpers/sse.js'
import { startGateway, until, type TestGateway } from './helpers/gateway.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { lacks } from './helpers/system.js'

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)

describe.skipIf(lacks('the Redis fault suite', 'redis-server'))('Redis hung, killed and restarted under load', () => {
  let redis: TestRedis
  let replicas: TestGateway[]
  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled)
    redis = await startRedis()
    const env = {
      REDIS_URL: redis.url,
      SESSION_STORE: 'redis',
      REDIS_COMMAND_TIMEOUT_MS: '500',
      // Budgets a production deployment would set, high enough that nothing here is refused for them.
      UPSTREAM_RPM: '100000',
      RATE_LIMIT_MAX: '100000',
      UPSTREAM_RETRIES: '0'
    }
    replicas = [await startGateway(env, {}, { logs: true }), await startGateway(env, {}, { logs: true })]
  })
  afterAll(async () => {
    for (const r of replicas) await r.close()
    await redis.stop()
    process.off('unhandledRejection', onUnhandled)
  })

  const at = (i: number) => replicas[i % replicas.length]!.url
  const up = async (i: number) => (await (await fetch(`${at(i)}/metrics`)).text()).match(/^gateway_redis_up (\d)/m)?.[1]

  /** A turn's outcome as one word: the terminal event of a stream, or the code of a refusal. */
  const outcome = (r: ChatResult) => (r.status === 200 ? (terminal(r)[0]?.event ?? 'lost') : `${r.status} ${r.body?.error?.code}`)

  /** Sends one turn of each kind to each replica; returns their outcomes. */
  async function probe(sessionId: string): Promise<Record<string, string[]>> {
    const kinds = {
      stateless: (i: number) => postChat(at(i), { message: 'stateless [[sim:tokens=3]]', history: [] }),
      newSession: (i: number) => postChat(at(i), { message: 'new session [[sim:tokens=3]]' }),
      continued: (i: number) => postChat(at(i), { message: 'continued [[sim:tokens=3]]', sessionId })
    }
    const out: Record<string, string[]> = {}
    for (const [kind, send] of Object.entries(kinds)) {
      out[kind] = []
      for (let i = 0; i < replicas.length; i++) {
        const r = await send(i)
        if (r.status === 503) expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0)
        out[kind].push(outcome(r))
      }
    }
    return out
  }

  async function newSession(): Promise<string> {
    const r = await postChat(at(0), { message: 'open [[sim:tokens=2]]' })
    expect(outcome(r)).toBe('done')
    return r.events[0]!.json.sessionId as string
  }

  /** Streams that started before the fault: stateless and session ones, on both replicas. */
  function inFlight(sessionIds: string[]): Promise<ChatResult[]> {
    const long = '[[sim:tokens=30, delay=100]]'
    return Promise.all([
      ...replicas.map((r) => postChat(r.url, { message: `long stateless ${long}`, history: [] })),
      ...sessionIds.map((sessionId, i) => postChat(at(i), { message: `long session ${long}`, sessionId }))
    ])
  }

  /** Time from Redis answering again until a session turn works on every replica. */
  async function recovered(sessionId?: string): Promise<number> {
    const start = performance.now()
    await until(async () => {
      for (let i = 0; i < replicas.length; i++) {
        const r = await postChat(
          at(i),
          sessionId ? { message: 'back? [[sim:tokens=1]]', sessionId } : { message: 'back? [[sim:tokens=1]]' }
        )
        if (outcome(r) !== 'done') return false
      }
      return true
    }, 'session turns to work again')
    return Math.round(performance.now() - start)
  }

  const expectDegraded = async (results: Record<string, string[]>) => {
    expect(results.stateless).toEqual(['done', 'done'])
    expect(results.newSession).toEqual(['503 store_unavailable', '503 store_unavailable'])
    expect(results.continued).toEqual(['503 store_unavailable', '503 store_unavailable'])
    for (let i = 0; i < replicas.length; i++) {
      expect((await fetch(`${at(i)}/healthz`)).status).toBe(200)
      const ready = await fetch(`${at(i)}/readyz`)
      expect(ready.status).toBe(200) // a shared cache outage must not empty the balancer
      expect(await ready.json()).toMatchObject({ status: 'ready', redis: false, degraded: true })
      expect(await up(i)).toBe('0')
    }
  }

  test('hung (SIGSTOP): stateless turns go on, session turns are 503 store_unavailable, streams in flight finish; all back after SIGCONT', async () => {
    const sessions = [await newSession(), await newSession()]
    expect(await probe(sessions[0]!)).toEqual({ stateless: ['done', 'done'], newSession: ['done', 'done'], continued: ['done', 'done'] })
    let firstChunks = 0
    const streams = inFlight(sessions)
    await until(() => (firstChunks = replicas.reduce((n, r) => n + r.sim.stats().active, 0)) >= 4, 'the streams to start')
    redis.pause()
    // At once, before a beat has noticed: the command itself times out, and that is a 503 too.
    expect(outcome(await postChat(at(0), { message: 'right now', sessionId: sessions[0] }))).toBe('503 store_unavailable')
    await until(async () => (await up(0)) === '0' && (await up(1)) === '0', 'both replicas to see Redis down')
    await expectDegraded(await probe(sessions[0]!))
    redis.resume()
    console.log(`recovery after SIGCONT: ${await recovered()} ms`)
    const results = await streams
    expect(results.map(outcome)).toEqual(Array(results.length).fill('done'))
    expect(firstChunks).toBeGreaterThanOrEqual(4)
    // The session turns that ended while Redis hung committed once it answered: their sessions are free, with the turn in them.
    const next = await postChat(at(1), { message: 'after [[sim:tokens=2]]', sessionId: sessions[1] })
    expect(outcome(next)).toBe('done')
    expect(replyText(next).length).toBeGreaterThan(0)
  })

  test('killed (SIGKILL): the same, then everything is back once it is restarted (empty: old sessions are gone)', async () => {
    const session = await newSession()
    const streams = inFlight([session])
    await until(() => replicas.reduce((n, r) => n + r.sim.stats().active, 0) >= 3, 'the streams to start')
    await redis.kill()
    await until(async () => (await up(0)) === '0' && (await up(1)) === '0', 'both replicas to see Redis down')
    await expectDegraded(await probe(session))
    expect((await streams).map(outcome)).toEqual(['done', 'done', 'done'])

    await redis.restart()
    console.log(`recovery after a restart (empty): ${await recovered()} ms`)
    expect(await up(0)).toBe('1')
    // A restarted, empty Redis lost the sessions it held: a documented 404, never a 500.
    const gone = await postChat(at(0), { message: 'still there?', sessionId: session })
    expect(outcome(gone)).toBe('404 session_not_found')
  })

  test('no replica left a promise to reject unhandled, and each logged the outage once per kind of failure', () => {
    expect(unhandled).toEqual([])
    for (const r of replicas) {
      const failures = r.logs.filter((l) => l.msg === 'redis command failed')
      const kinds = failures.map((l) => `${l.op}:${l.err}`)
      expect(failures.length).toBeGreaterThan(0)
      // Two outages, so at most two lines per kind.
      for (const kind of new Set(kinds)) expect(kinds.filter((k) => k === kind).length).toBeLessThanOrEqual(2)
      expect(r.logs.filter((l) => l.msg.startsWith('redis does not answer')).length).toBe(2)
      expect(r.logs.some((l) => l.level >= 50)).toBe(false) // nothing at error level
    }
  })
})
