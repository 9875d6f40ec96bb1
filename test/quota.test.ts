// The upstream quota: one budget for every replica, spent before anything is sent upstream.
import { afterEach, describe, expect, test } from 'vitest'
import { postChat, terminal } from './helpers/sse.js'
import { startGateway, type TestGateway } from './helpers/gateway.js'
import { startSharedRedis, type RedisMode } from './helpers/redis.js'
import { lacks } from './helpers/system.js'

const open: Array<TestGateway | { stop(): Promise<void> }> = []
afterEach(async () => {
  for (const x of open.splice(0).reverse()) await ('stop' in x ? x.stop() : x.close())
})
async function gateway(env: Record<string, string>): Promise<TestGateway> {
  const g = await startGateway(env)
  open.push(g)
  return g
}
async function shared(mode: RedisMode): Promise<Record<string, string>> {
  const redis = await startSharedRedis(mode)
  open.push(redis)
  return redis.env
}

test('past UPSTREAM_RPM a turn is refused with 429 rate_limited and Retry-After, and never reaches the upstream', async () => {
  const g = await gateway({ UPSTREAM_RPM: '2', QUOTA_MAX_WAIT_MS: '0' })
  const results = []
  for (let i = 0; i < 3; i++) results.push(await postChat(g.url, { message: `turn ${i} [[sim:tokens=2]]` }))
  expect(results.map((r) => r.status)).toEqual([200, 200, 429])
  expect(results[2]!.body.error.code).toBe('rate_limited')
  expect(Number(results[2]!.headers.get('retry-after'))).toBeGreaterThan(0)
  expect(g.sim.stats().requests).toBe(2)
})

test('UPSTREAM_TPM budgets input tokens', async () => {
  const g = await gateway({ UPSTREAM_TPM: '100', QUOTA_MAX_WAIT_MS: '0' })
  const long = 'word '.repeat(60) // about 75 tokens
  expect((await postChat(g.url, { message: `${long} [[sim:tokens=1]]`, history: [] })).status).toBe(200)
  expect((await postChat(g.url, { message: `${long} [[sim:tokens=1]]`, history: [] })).status).toBe(429)
  expect((await postChat(g.url, { message: 'short [[sim:tokens=1]]', history: [] })).status).toBe(200)
})

test('a turn that cannot be served within QUOTA_MAX_WAIT_MS is refused at once, not when the wait runs out', async () => {
  // The wait allowed is long, and the pause longer still: a gateway that waited would take 25 s.
  // No retries, so the 429 ends its turn at once (no deadline short enough for a loaded machine to trip).
  const g = await gateway({ QUOTA_MAX_WAIT_MS: '25000', UPSTREAM_RETRIES: '0' })
  const limited = await postChat(g.url, { message: 'quota [[sim:status=429, retry-delay=30000]]' })
  expect(limited.events.at(-1)!.json).toMatchObject({ code: 'upstream_rate_limited', retryAfterMs: 30000 })
  const started = Date.now()
  const refused = await postChat(g.url, { message: 'too long a wait' })
  expect(refused.status).toBe(429)
  expect(refused.body.error.code).toBe('rate_limited')
  expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(29)
  expect(Date.now() - started).toBeLessThan(25_000)
})

describe.skipIf(lacks('the shared quota suite', 'redis-server', 'redis-cli')).each(['standalone', 'cluster'] as const)(
  'shared through Redis (%s)',
  (mode) => {
    test('the budget is shared by every replica through Redis', async () => {
      const env = { ...(await shared(mode)), UPSTREAM_RPM: '3', QUOTA_MAX_WAIT_MS: '0' }
      const [a, b] = [await gateway(env), await gateway(env)]
      const statuses = []
      for (let i = 0; i < 6; i++) statuses.push((await postChat((i % 2 ? b : a).url, { message: `turn ${i} [[sim:tokens=1]]` })).status)
      expect(statuses.filter((s) => s === 200)).toHaveLength(3)
      expect(statuses.filter((s) => s === 429)).toHaveLength(3)
      expect(a.sim.stats().requests + b.sim.stats().requests).toBe(3)
    })

    test('a Gemini 429 cools its model down on every replica for the RetryInfo delay; other models go on', async () => {
      const env = { ...(await shared(mode)), QUOTA_MAX_WAIT_MS: '20000', UPSTREAM_RETRIES: '0' }
      const [a, b] = [await gateway(env), await gateway(env)]
      const limited = await postChat(a.url, { message: 'quota [[sim:status=429, retry-delay=3000]]', model: 'gemini-2.5-flash' })
      expect(limited.events.at(-1)!.json).toMatchObject({ code: 'upstream_rate_limited', retryAfterMs: 3000 })
      const cooledUntil = Number(await a.app.gateway.redis!.client.hget('gw:{routing}:cooldowns', 'gemini-2.5-flash'))
      expect(cooledUntil).toBeGreaterThan(0)

      // The same model, on the other replica: it waits for the cool-down to end.
      let firstChunkAt = 0
      let chunkedBeforeOther = false
      const waiting = postChat(
        b.url,
        { message: 'patient [[sim:tokens=2]]', model: 'gemini-2.5-flash' },
        { onEvent: (e) => e.event === 'chunk' && (firstChunkAt ||= Date.now()) }
      )
      // Another model is its own deployment with its own quota: served while the first one waits.
      const other = await postChat(b.url, { message: 'elsewhere [[sim:tokens=2]]', model: 'gemini-2.5-pro' })
      chunkedBeforeOther = firstChunkAt !== 0
      expect(terminal(other)[0]!.event).toBe('done')
      expect(other.events[0]!.json).toMatchObject({ deployment: 'gemini-2.5-pro' })
      const waited = await waiting
      expect(terminal(waited)[0]!.event).toBe('done')
      // Causal, so no load can break it: the held model's upstream call started after the shared cool-down ended.
      expect(firstChunkAt).toBeGreaterThanOrEqual(cooledUntil)
      expect(chunkedBeforeOther).toBe(false)
    })
  }
)
