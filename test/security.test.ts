// API keys, per-client limits, CORS and security headers, as clients meet them.
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { postChat, terminal } from './helpers/sse.js'
import { startGateway, type TestGateway } from './helpers/gateway.js'
import { startSharedRedis } from './helpers/redis.js'
import { lacks } from './helpers/system.js'

let gw: TestGateway | undefined
afterEach(async () => {
  await gw?.close()
  gw = undefined
})

const bearer = (key: string) => ({ authorization: `Bearer ${key}` })

test('with API_KEYS every API route needs a valid bearer key; probes and metrics stay open by default', async () => {
  const file = join(tmpdir(), `keys-${process.pid}.txt`)
  writeFileSync(file, '# comment\nfrom-file-key\n')
  gw = await startGateway({ API_KEYS: 'alpha-key,beta-key', API_KEYS_FILE: file }, {}, { logs: true })
  for (const headers of [{}, bearer('wrong'), { authorization: 'Basic alpha-key' }]) {
    const r = await postChat(gw.url, { message: 'hi' }, { headers })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('unauthorized')
  }
  expect((await fetch(`${gw.url}/api/chat/streams/abcdefgh1234`)).status).toBe(401)
  for (const key of ['alpha-key', 'beta-key', 'from-file-key']) {
    expect(terminal(await postChat(gw.url, { message: 'hi [[sim:tokens=1]]' }, { headers: bearer(key) }))[0]!.event).toBe('done')
  }
  for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json']) expect((await fetch(`${gw.url}${path}`)).status).toBe(200)
  expect(JSON.stringify(gw.logs)).not.toMatch(/alpha-key|beta-key|from-file-key/)
})

test('health and metrics can be closed too', async () => {
  gw = await startGateway({ API_KEYS: 'k1234567', AUTH_OPEN_METRICS: '0', AUTH_OPEN_HEALTH: '0' })
  for (const path of ['/healthz', '/metrics']) {
    expect((await fetch(`${gw.url}${path}`)).status).toBe(401)
    expect((await fetch(`${gw.url}${path}`, { headers: bearer('k1234567') })).status).toBe(200)
  }
})

test('RATE_LIMIT_MAX per client: past it, 429 rate_limited with Retry-After', async () => {
  gw = await startGateway({ RATE_LIMIT_MAX: '2', RATE_LIMIT_WINDOW_MS: '60000' })
  const statuses = []
  for (let i = 0; i < 3; i++) statuses.push(await postChat(gw.url, { message: `m${i} [[sim:tokens=1]]` }))
  expect(statuses.map((r) => r.status)).toEqual([200, 200, 429])
  expect(statuses[2]!.body.error.code).toBe('rate_limited')
  expect(Number(statuses[2]!.headers.get('retry-after'))).toBeGreaterThan(0)
  expect((await fetch(`${gw.url}/healthz`)).status).toBe(200)
})

test('MAX_STREAMS_PER_KEY caps concurrent streams per client, and frees the slot when a stream ends', async () => {
  gw = await startGateway({ MAX_STREAMS_PER_KEY: '1' })
  const g = gw
  let started!: () => void
  const first = new Promise<void>((resolve) => {
    started = resolve
  })
  const long = postChat(
    g.url,
    { message: 'long [[sim:tokens=5, delay=80]]' },
    {
      onEvent: (e) => {
        if (e.event === 'chunk') started()
      }
    }
  )
  await first
  const second = await postChat(g.url, { message: 'second' })
  expect(second.status).toBe(429)
  expect(second.body.error.code).toBe('rate_limited')
  expect(terminal(await long)[0]!.event).toBe('done')
  expect((await postChat(g.url, { message: 'third [[sim:tokens=1]]' })).status).toBe(200)
})

test('CORS allowlist and security headers', async () => {
  gw = await startGateway({ CORS_ORIGINS: 'https://chat.example.org' })
  const allowed = await fetch(`${gw.url}/api/chat`, {
    method: 'OPTIONS',
    headers: {
      origin: 'https://chat.example.org',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type'
    }
  })
  expect(allowed.headers.get('access-control-allow-origin')).toBe('https://chat.example.org')
  const other = await fetch(`${gw.url}/healthz`, { headers: { origin: 'https://evil.example.com' } })
  expect(other.headers.get('access-control-allow-origin')).toBeNull()
  expect(other.headers.get('x-content-type-options')).toBe('nosniff')
  const stream = await postChat(gw.url, { message: 'hi [[sim:tokens=1]]' }, { headers: { origin: 'https://chat.example.org' } })
  expect(stream.headers.get('access-control-allow-origin')).toBe('https://chat.example.org')
  expect(stream.headers.get('x-content-type-options')).toBe('nosniff')
})

describe.skipIf(lacks('the shared rate limit suite', 'redis-server', 'redis-cli')).each(['standalone', 'cluster'] as const)(
  'RATE_LIMIT_MAX across replicas (Redis %s)',
  (mode) => {
    test('one client is counted once by every replica together', async () => {
      const redis = await startSharedRedis(mode)
      const env = { ...redis.env, RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000' }
      const [a, b] = [await startGateway(env), await startGateway(env)]
      try {
        const statuses = []
        for (let i = 0; i < 4; i++)
          statuses.push((await postChat((i % 2 ? b : a).url, { message: `m${i} [[sim:tokens=1]]`, history: [] })).status)
        expect(statuses).toEqual([200, 200, 200, 429])
      } finally {
        await a.close()
        await b.close()
        await redis.stop()
      }
    })
  }
)
