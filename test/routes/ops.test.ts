// Health, readiness, metrics and the API description, as a balancer and Prometheus see them.
import { afterAll, beforeAll, expect, test } from 'vitest'
import { postChat } from '../helpers/sse.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'

let gw: TestGateway
beforeAll(async () => {
  gw = await startGateway({ UPSTREAM_RETRIES: '0', POOL_MIN_THREADS: '2' })
})
afterAll(async () => {
  await gw?.close()
})

async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${gw.url}/metrics`)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/)
  const samples = new Map<string, number>()
  for (const line of (await res.text()).split('\n')) {
    if (line && !line.startsWith('#')) samples.set(line.slice(0, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1)))
  }
  return samples
}
const value = (m: Map<string, number>, key: string) => m.get(key) ?? 0

test('/healthz and /readyz answer with small JSON bodies', async () => {
  const health = await fetch(`${gw.url}/healthz`)
  expect(health.status).toBe(200)
  expect(await health.json()).toEqual({ status: 'ok' })
  const ready = await fetch(`${gw.url}/readyz`)
  expect(ready.status).toBe(200)
  expect(await ready.json()).toMatchObject({ status: 'ready', workers: 2, draining: false })
})

test('metrics move with the streams: active while open, outcomes, tokens, histograms, upstream errors', async () => {
  const before = await scrape()
  let sawChunk!: () => void
  const chunked = new Promise<void>((resolve) => {
    sawChunk = resolve
  })
  const running = Promise.all([
    postChat(
      gw.url,
      { message: 'slow one [[sim:tokens=6, delay=120]]' },
      {
        onEvent: (e) => {
          if (e.event === 'chunk') sawChunk()
        }
      }
    ),
    postChat(gw.url, { message: 'slow two [[sim:tokens=6, delay=120]]' })
  ])
  await chunked
  const midStream = await scrape()
  expect(value(midStream, 'gateway_active_streams')).toBe(2)
  expect(value(midStream, 'gateway_pool_threads')).toBe(2)
  expect(value(midStream, 'gateway_pool_utilization')).toBeGreaterThan(0)
  await running
  await postChat(gw.url, { message: 'bad [[sim:status=503]]' })
  const after = await scrape()
  expect(value(after, 'gateway_active_streams')).toBe(0)
  expect(value(after, 'gateway_streams_total{outcome="done"}') - value(before, 'gateway_streams_total{outcome="done"}')).toBe(2)
  expect(
    value(after, 'gateway_streams_total{outcome="upstream_unavailable"}') -
      value(before, 'gateway_streams_total{outcome="upstream_unavailable"}')
  ).toBe(1)
  expect(
    value(after, 'gateway_upstream_errors_total{code="upstream_unavailable"}') -
      value(before, 'gateway_upstream_errors_total{code="upstream_unavailable"}')
  ).toBe(1)
  expect(value(after, 'gateway_tokens_total{direction="out"}') - value(before, 'gateway_tokens_total{direction="out"}')).toBe(12)
  expect(value(after, 'gateway_tokens_total{direction="in"}')).toBeGreaterThan(value(before, 'gateway_tokens_total{direction="in"}'))
  expect(value(after, 'gateway_time_to_first_chunk_seconds_count') - value(before, 'gateway_time_to_first_chunk_seconds_count')).toBe(2)
  expect(value(after, 'gateway_stream_duration_seconds_count') - value(before, 'gateway_stream_duration_seconds_count')).toBe(3)
  expect(after.has('nodejs_eventloop_lag_p99_seconds')).toBe(true)
  expect(after.has('process_resident_memory_bytes')).toBe(true)
  // No per-request label ever appears.
  for (const key of after.keys()) expect(key).not.toMatch(/requestId|sessionId|[0-9a-f]{8}-[0-9a-f]{4}/)
})

test('refusals are counted by code', async () => {
  const before = value(await scrape(), 'gateway_admission_refused_total{code="bad_request"}')
  await postChat(gw.url, { nope: true })
  expect(value(await scrape(), 'gateway_admission_refused_total{code="bad_request"}') - before).toBe(1)
})

test('/openapi.json describes the chat route from the schema it validates with; /docs serves a page', async () => {
  const doc = (await (await fetch(`${gw.url}/openapi.json`)).json()) as any
  expect(doc.openapi).toBe('3.1.0')
  const chat = doc.paths['/api/chat'].post
  const schema = chat.requestBody.content['application/json'].schema
  // message is optional: a turn may carry only toolResults.
  expect(schema.required).toBeUndefined()
  expect(schema.additionalProperties).toBe(false)
  expect(schema.properties.message.maxLength).toBe(32000)
  expect(schema.properties.tools.maxItems).toBe(128)
  expect(Object.keys(schema.properties.thinking.properties)).toEqual(['budget', 'level', 'include'])
  expect(schema.properties.model.enum).toEqual(gw.config.allowedModels)
  expect(Object.keys(chat.responses)).toEqual(expect.arrayContaining(['200', '400', '404', '409', '413', '415', '503']))
  expect(doc.paths['/readyz']).toBeDefined()
  const page = await fetch(`${gw.url}/docs`, { redirect: 'follow' })
  expect(page.status).toBe(200)
  expect(await page.text()).toMatch(/swagger/i)
})
