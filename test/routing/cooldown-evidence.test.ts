// A cool-down follows evidence about the deployment, never one turn's content: a turn whose content
// makes every provider answer 5xx fails alone (however often its client resends it), while 5xx
// answers to different turns, with no success between them, cool the deployment on every replica.
import { createServer, type Server } from 'node:http'
import { once } from 'node:events'
import { describe, expect, test } from 'vitest'
import { FAILURES_TO_COOL } from '../../src/routing/failures.js'
import type { TestGateway } from '../helpers/gateway.js'
import { adminClient, startSharedRedis } from '../helpers/redis.js'
import { postChat, terminal, type ChatResult } from '../helpers/sse.js'
import { lacks } from '../helpers/system.js'
import { fleet, upstreamsFile } from '../helpers/upstreams.js'

const { own, sim, gateway } = fleet()

const deploymentOf = (r: ChatResult) => r.events[0]?.json.deployment as string | undefined
const served = (r: ChatResult) => {
  expect(r.status).toBe(200)
  expect(terminal(r).map((e) => e.event)).toEqual(['done'])
  return deploymentOf(r)
}
const failed = (r: ChatResult) => {
  expect(r.status).toBe(200)
  const end = terminal(r)
  expect(end.map((e) => e.event)).toEqual(['error'])
  return end[0]!.json.code as string
}
const cooldowns = async (g: TestGateway, id: string) =>
  Number(
    new RegExp(`gateway_deployment_cooldowns_total\\{deployment="${id}"\\} (\\d+)`).exec(
      await (await fetch(`${g.url}/metrics`)).text()
    )?.[1]
  )

type Provider = 'gemini' | 'openai'
const deployment = (id: string, provider: Provider, url: string) =>
  provider === 'gemini'
    ? { id, provider, alias: 'chat', model: 'gemini-2.5-flash', apiKey: `key-${id}`, baseUrl: url }
    : { id, provider, alias: 'chat', model: 'local', apiKey: `key-${id}`, baseUrl: `${url}/v1` }

/** Two simulators behind one alias; nothing waits for a deployment to free up, so a cooled alias answers 429 at once. */
async function pair(provider: Provider, env: Record<string, string> = {}) {
  const [a, b] = [await sim(), await sim()]
  const file = upstreamsFile({ deployments: [deployment('a', provider, a.url), deployment('b', provider, b.url)] })
  return { a, b, env: { QUOTA_MAX_WAIT_MS: '0', UPSTREAM_COOLDOWN_MS: '60000', UPSTREAMS_FILE: file, ...env } }
}

/** A deployment whose every answer is Gemini's 500: broken, whatever the turn. */
async function broken(): Promise<{ url: string; requests: () => number }> {
  let requests = 0
  const server: Server = createServer((req, res) => {
    requests++
    req.resume()
    res.writeHead(500, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { code: 500, message: 'An internal error has occurred.', status: 'INTERNAL' } }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  own({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) })
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests: () => requests }
}

describe('one turn that makes every deployment fail cools nothing', () => {
  test.each<[Provider, string, string]>([
    ['gemini', 'status=500', 'upstream_error'],
    ['gemini', 'status=503', 'upstream_unavailable'],
    ['gemini', 'status=504', 'upstream_timeout'],
    ['gemini', 'fail-after=0', 'upstream_error'],
    ['openai', 'status=500', 'upstream_error']
  ])(
    '%s [[sim:%s]]: rerouted, failed on both, resent by its client; every other turn is served at once',
    async (provider, directive, code) => {
      const { a, b, env } = await pair(provider)
      const g = await gateway(env)
      const poison = `[[sim:${directive}]] the same turn every time`
      for (let i = 0; i < FAILURES_TO_COOL + 1; i++) expect(failed(await postChat(g.url, { message: poison }))).toBe(code)
      // Each time it went to one deployment, then moved to the other.
      expect([a.stats().requests, b.stats().requests]).toEqual([FAILURES_TO_COOL + 1, FAILURES_TO_COOL + 1])
      for (let i = 0; i < 6; i++) served(await postChat(g.url, { message: `another client ${i}` }))
      expect([await cooldowns(g, 'a'), await cooldowns(g, 'b')]).toEqual([0, 0])
    }
  )
})

describe('failures of distinct turns', () => {
  test(`a deployment that fails ${FAILURES_TO_COOL} different turns cools down; their turns finish elsewhere unseen`, async () => {
    const down = await broken()
    const up = await sim()
    const g = await gateway({
      UPSTREAM_COOLDOWN_MS: '60000',
      UPSTREAMS_FILE: upstreamsFile({ deployments: [deployment('down', 'gemini', down.url), deployment('up', 'gemini', up.url)] })
    })
    let i = 0
    // Equal weights: `down` is picked about every other turn; each of those turns moves to `up`.
    while (down.requests() < FAILURES_TO_COOL) {
      expect(i).toBeLessThan(200)
      expect(served(await postChat(g.url, { message: `turn ${i++}` }))).toBe('up')
    }
    expect(await cooldowns(g, 'down')).toBe(1)
    for (let j = 0; j < 10; j++) expect(served(await postChat(g.url, { message: `after ${j}` }))).toBe('up')
    expect(down.requests()).toBe(FAILURES_TO_COOL)
    expect(await cooldowns(g, 'up')).toBe(0)
  })

  test('a success on the deployment starts the count over', async () => {
    const { env } = await pair('gemini')
    const g = await gateway(env)
    const poison = async (i: number) => failed(await postChat(g.url, { message: `[[sim:status=500]] distinct turn ${i}` }))
    // FAILURES_TO_COOL - 1 distinct failures on each deployment: nothing cools yet.
    for (let i = 0; i < FAILURES_TO_COOL - 1; i++) expect(await poison(i)).toBe('upstream_error')
    // Both deployments serve a turn (picks are random: go on until each has).
    const seen = new Set<string | undefined>()
    for (let i = 0; seen.size < 2; i++) {
      expect(i).toBeLessThan(200)
      seen.add(served(await postChat(g.url, { message: `fine ${i}` })))
    }
    // As many distinct failures again: without the reset, these would have cooled both.
    for (let i = 0; i < FAILURES_TO_COOL - 1; i++) expect(await poison(100 + i)).toBe('upstream_error')
    expect([await cooldowns(g, 'a'), await cooldowns(g, 'b')]).toEqual([0, 0])
    // One more distinct failure is the FAILURES_TO_COOL-th since the successes: both cool down.
    expect(await poison(200)).toBe('upstream_error')
    expect([await cooldowns(g, 'a'), await cooldowns(g, 'b')]).toEqual([1, 1])
    const refused = await postChat(g.url, { message: 'nothing left' })
    expect(refused.status).toBe(429)
    expect(refused.body.error.code).toBe('rate_limited')
  })
})

describe.skipIf(lacks('the shared cool-down evidence test', 'redis-server'))('two replicas sharing Redis', () => {
  test("one replica's poison turn cools nothing on the other; distinct failures cool the alias on both", async () => {
    const redis = own(await startSharedRedis('standalone'))
    const { env } = await pair('gemini', redis.env)
    const [one, two] = [await gateway(env), await gateway(env)]
    expect(failed(await postChat(one.url, { message: '[[sim:status=500]] poison' }))).toBe('upstream_error')
    for (let i = 0; i < 6; i++) served(await postChat(two.url, { message: `other replica ${i}` }))
    const admin = adminClient(redis.env.REDIS_URL, 'standalone')
    try {
      expect(await admin.hgetall('gw:{routing}:cooldowns')).toEqual({})
      // Distinct failing turns on the first replica trip it; the cool-down is in the shared hash.
      for (let i = 1; i < FAILURES_TO_COOL; i++) failed(await postChat(one.url, { message: `[[sim:status=500]] poison ${i}` }))
      expect(Object.keys(await admin.hgetall('gw:{routing}:cooldowns')).sort()).toEqual(['a', 'b'])
    } finally {
      admin.disconnect()
    }
    const refused = await postChat(two.url, { message: 'the second replica sees it' })
    expect(refused.status).toBe(429)
    expect(refused.body.error.code).toBe('rate_limited')
  })
})
