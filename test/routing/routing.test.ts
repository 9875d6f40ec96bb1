// Routing across deployments against real HTTP servers: budgets shared out, a 429 that cools a
// deployment down on every replica, a dead deployment skipped, an exhausted alias falling back.
import { createServer, type Server } from 'node:net'
import { once } from 'node:events'
import { describe, expect, test } from 'vitest'
import type { Simulator } from '../../src/simulator/index.js'
import { postChat, terminal, type ChatResult } from '../helpers/sse.js'
import { startSharedRedis } from '../helpers/redis.js'
import { lacks } from '../helpers/system.js'
import { fleet, upstreamsFile } from '../helpers/upstreams.js'

const { own, sim, gateway } = fleet()
const studio = (id: string, alias: string, s: Simulator | string, extra: object = {}) => ({
  id,
  provider: 'gemini',
  alias,
  model: 'gemini-2.5-flash',
  apiKey: `key-${id}`,
  baseUrl: typeof s === 'string' ? s : s.url,
  ...extra
})
const deploymentOf = (r: ChatResult) => r.events[0]?.json.deployment as string | undefined
const served = (r: ChatResult) => {
  expect(r.events.map((e) => e.event).filter((e) => e === 'error')).toEqual([])
  expect(terminal(r).map((e) => e.event)).toEqual(['done'])
  return deploymentOf(r)
}

test('load is spread across two deployments within their budgets; past both, 429 with Retry-After', async () => {
  const [a, b] = [await sim(), await sim()]
  const g = await gateway({
    QUOTA_MAX_WAIT_MS: '0',
    UPSTREAMS_FILE: upstreamsFile({ deployments: [studio('a', 'chat', a, { rpm: 5 }), studio('b', 'chat', b, { rpm: 5 })] })
  })
  const picks: Array<string | undefined> = []
  for (let i = 0; i < 10; i++) picks.push(served(await postChat(g.url, { message: `turn ${i}` })))
  expect(picks.filter((p) => p === 'a')).toHaveLength(5)
  expect(a.stats().requests).toBe(5)
  expect(b.stats().requests).toBe(5)
  const refused = await postChat(g.url, { message: 'one too many' })
  expect(refused.status).toBe(429)
  expect(refused.body.error.code).toBe('rate_limited')
  const retryAfter = Number(refused.headers.get('retry-after'))
  expect(retryAfter).toBeGreaterThanOrEqual(1)
  expect(retryAfter).toBeLessThanOrEqual(60)
  expect(a.stats().requests + b.stats().requests).toBe(10)
  const metrics = await (await fetch(`${g.url}/metrics`)).text()
  expect(metrics).toMatch(/gateway_deployment_requests_total\{deployment="a"\} 5/)
  expect(metrics).toMatch(/gateway_deployment_requests_total\{deployment="b"\} 5/)
})

test('a dead deployment is skipped: its turn moves on with no error event, and it is not called again while it cools down', async () => {
  // A server that takes each connection and resets it: a deployment whose host is down.
  let connections = 0
  const dead: Server = createServer((socket) => {
    connections++
    socket.resetAndDestroy()
  })
  dead.listen(0, '127.0.0.1')
  await once(dead, 'listening')
  own({ close: () => new Promise<void>((resolve) => dead.close(() => resolve())) })
  const address = dead.address() as { port: number }
  const alive = await sim()
  const g = await gateway({
    UPSTREAM_COOLDOWN_MS: '60000',
    UPSTREAMS_FILE: upstreamsFile({
      deployments: [studio('down', 'chat', `http://127.0.0.1:${address.port}`), studio('up', 'chat', alive)]
    })
  })
  // Equal weights: the dead one is picked soon; that turn is served by the other.
  let i = 0
  while (connections === 0) {
    expect(i).toBeLessThan(60)
    expect(served(await postChat(g.url, { message: `turn ${i++}` }))).toBe('up')
  }
  for (let j = 0; j < 8; j++) expect(served(await postChat(g.url, { message: `after ${j}` }))).toBe('up')
  expect(connections).toBe(1)
  expect(alive.stats().requests).toBe(i + 8)
  expect(g.logs.filter((l) => l.msg === 'chat turn' && l.retries === 1).map((l) => l.deployment)).toEqual(['up'])
})

test('an exhausted alias falls back to its fallbacks in order; when everything is spent, 429 until the soonest frees up', async () => {
  const [a, b] = [await sim(), await sim()]
  const g = await gateway({
    QUOTA_MAX_WAIT_MS: '0',
    UPSTREAMS_FILE: upstreamsFile({
      deployments: [studio('fast-1', 'fast', a, { rpm: 1 }), studio('big-1', 'big', b, { rpm: 1 })],
      fallbacks: { fast: ['big'] }
    })
  })
  expect(served(await postChat(g.url, { message: 'first', model: 'fast' }))).toBe('fast-1')
  expect(served(await postChat(g.url, { message: 'second', model: 'fast' }))).toBe('big-1')
  const refused = await postChat(g.url, { message: 'third', model: 'fast' })
  expect(refused.status).toBe(429)
  expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
  expect([a.stats().requests, b.stats().requests]).toEqual([1, 1])
})

describe.skipIf(lacks('the shared cool-down test', 'redis-server'))('shared by every replica', () => {
  test('a deployment that answers 429 with RetryInfo is not called again inside its delay, on any replica; its turns finish elsewhere', async () => {
    const redis = own(await startSharedRedis('standalone'))
    // One request a minute on `limited`'s project: its second request gets Gemini's 429 with RetryInfo.
    const [limited, roomy] = [await sim({ rpm: 1 }), await sim()]
    const env = {
      ...redis.env,
      UPSTREAMS_FILE: upstreamsFile({ deployments: [studio('limited', 'chat', limited), studio('roomy', 'chat', roomy)] })
    }
    const replicas = [await gateway(env), await gateway(env)]
    let i = 0
    // Equal weights: each turn picks either at random, so `limited` is picked a second time soon.
    while (limited.stats().rateLimited === 0) {
      expect(i).toBeLessThan(60)
      served(await postChat(replicas[i % 2]!.url, { message: `turn ${i++}` }))
    }
    const calls = limited.stats().requests
    for (let j = 0; j < 10; j++) expect(served(await postChat(replicas[j % 2]!.url, { message: `after ${j}` }))).toBe('roomy')
    expect(limited.stats().requests).toBe(calls)
    const cooled = await (await fetch(`${replicas[1]!.url}/metrics`)).text()
    expect(cooled).toMatch(/gateway_deployment_requests_total\{deployment="roomy"\} [1-9]/)
    const metrics = await Promise.all(replicas.map(async (r) => (await fetch(`${r.url}/metrics`)).text()))
    expect(metrics.some((m) => /gateway_deployment_rate_limited_total\{deployment="limited"\} 1/.test(m))).toBe(true)
  })
})
