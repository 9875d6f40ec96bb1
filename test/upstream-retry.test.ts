// Upstream faults before the first chunk are retried transparently; after it, never.
import { afterAll, beforeAll, expect, test } from 'vitest'
import { postChat, replyText } from './helpers/sse.js'
import { startGateway, type TestGateway } from './helpers/gateway.js'
import { freePort } from './helpers/ports.js'

let gw: TestGateway
beforeAll(async () => {
  // The default first-token deadline (30 s): far above what a loaded machine needs for these retries.
  gw = await startGateway({ UPSTREAM_RETRIES: '2' })
})
afterAll(async () => {
  await gw?.close()
})

async function retries(code: string): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`gateway_retries_total{code="${code}"}`))
  return line ? Number(line.split(' ')[1]) : 0
}

/** The same turn again: its `times` failures are spent, so the upstream is healthy for it now. */
async function healthy(message: string): Promise<string> {
  return replyText(await postChat(gw.url, { message, history: [] }))
}

test.each([
  ['[[sim:status=500, times=1]]', 'upstream_error'],
  ['[[sim:status=503, times=2]]', 'upstream_unavailable'],
  ['[[sim:status=504, times=1]]', 'upstream_timeout'],
  ['[[sim:status=429, retry-delay=300, times=1]]', 'upstream_rate_limited']
])('%s before any chunk is retried and the client sees only the reply', async (directive, code) => {
  const message = `retry me ${directive} [[sim:tokens=6]]`
  const before = { requests: gw.sim.stats().requests, retries: await retries(code) }
  const r = await postChat(gw.url, { message, history: [] })
  expect(r.events.map((e) => e.event)).toEqual(['meta', ...Array(6).fill('chunk'), 'done'])
  const times = Number(/times=(\d+)/.exec(directive)![1])
  expect(gw.sim.stats().requests - before.requests).toBe(times + 1)
  expect((await retries(code)) - before.retries).toBe(times)
  expect(replyText(r)).toBe(await healthy(message))
})

test('at most UPSTREAM_RETRIES retries, then the error event', async () => {
  const before = gw.sim.stats().requests
  const r = await postChat(gw.url, { message: 'always down [[sim:status=503, times=10]]', history: [] })
  expect(r.events.at(-1)!.json).toMatchObject({ code: 'upstream_unavailable', retryable: true })
  expect(gw.sim.stats().requests - before).toBe(3)
})

test('a 429 whose RetryInfo delay does not fit in the first-token deadline is not retried', async () => {
  // Its pause would hold back every later test: a gateway of its own.
  const own = await startGateway({ UPSTREAM_RETRIES: '2' })
  try {
    const r = await postChat(own.url, { message: 'quota [[sim:status=429, retry-delay=60000, times=1]]', history: [] })
    expect(r.events.at(-1)!.json).toMatchObject({ code: 'upstream_rate_limited', retryAfterMs: 60000 })
    expect(own.sim.stats().requests).toBe(1)
  } finally {
    await own.close()
  }
})

test('once a chunk was sent nothing is retried', async () => {
  const before = gw.sim.stats().requests
  const r = await postChat(gw.url, { message: 'half [[sim:tokens=8, drop-after=3, times=1]]', history: [] })
  expect(r.events.filter((e) => e.event === 'chunk')).toHaveLength(3)
  expect(r.events.at(-1)!.json.code).toBe('upstream_unavailable')
  expect(gw.sim.stats().requests - before).toBe(1)
})

test('a refused connection is retried, then reported as upstream_unavailable', async () => {
  // A port that was just free: nothing listens there.
  const port = await freePort()
  const down = await startGateway({ GEMINI_BASE_URL: `http://127.0.0.1:${port}`, UPSTREAM_RETRIES: '2' }, {}, { logs: true })
  try {
    const r = await postChat(down.url, { message: 'anyone there?' })
    expect(r.events.at(-1)!.json).toMatchObject({ code: 'upstream_unavailable', retryable: true })
    expect(down.logs.find((l) => l.msg === 'chat turn').retries).toBe(2)
  } finally {
    await down.close()
  }
})
