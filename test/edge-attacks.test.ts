// Attacks on the edge, generated rather than listed: every spelling of a protected route's target
// (%-escapes in either case, absolute-form, a query) meets the key check and the rate limit the
// canonical spelling meets; nesting in any JSON field is refused at the edge; and the refusals made
// before any route runs (a bad escape, a broken request, oversized headers, a body that never
// finishes) answer in the registry's shape and the route's dialect.
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { errorCodes } from '../src/errors.js'
import { JSON_MAX_DEPTH } from '../src/json-body.js'
import { postChat, terminal } from './helpers/sse.js'
import { startGateway, type TestGateway } from './helpers/gateway.js'
import { rawJson, rawRequest, type RawResponse } from './helpers/raw-http.js'

const KEY = 'edge-test-key-1234'
const auth = { authorization: `Bearer ${KEY}` }

/** Every route that needs a key with AUTH_OPEN_HEALTH=0 and AUTH_OPEN_METRICS=0, and a body that reaches it. */
const PROTECTED = [
  { method: 'POST', path: '/api/chat', body: '{}' },
  { method: 'POST', path: '/v1/chat/completions', body: '{}' },
  { method: 'GET', path: '/v1/models' },
  { method: 'GET', path: '/api/chat/streams/abcdefgh1234' },
  { method: 'GET', path: '/metrics' },
  { method: 'GET', path: '/healthz' },
  { method: 'GET', path: '/readyz' }
] as const

/** The same path with any character but `/` percent-encoded, in upper or lower hex. */
const spelled = (path: string) =>
  fc.array(fc.constantFrom('keep', 'upper', 'lower'), { minLength: path.length, maxLength: path.length }).map((how) =>
    Array.from(path)
      .map((ch, i) => {
        if (ch === '/' || how[i] === 'keep') return ch
        const hex = ch.charCodeAt(0).toString(16).padStart(2, '0')
        return `%${how[i] === 'upper' ? hex.toUpperCase() : hex}`
      })
      .join('')
  )
const origin = fc.constantFrom('', 'http://x', 'http://127.0.0.1', 'https://evil.example', 'http://x:80')
const query = fc.constantFrom('', '?a=1', '?', '?key=nothing')

/** A refusal in the registry: the code's status and the dialect's shape. */
function expectRefusal(res: RawResponse, code: keyof typeof errorCodes, dialect: 'gateway' | 'openai') {
  expect(res.status).toBe(errorCodes[code].status)
  if (dialect === 'openai') expect(res.json).toEqual({ error: { message: expect.any(String), type: expect.any(String), code } })
  else expect(res.json).toEqual({ error: { code, message: expect.any(String) } })
}

describe('the key check and the rate limit follow the route, however its target is spelled', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startGateway({ API_KEYS: KEY, AUTH_OPEN_HEALTH: '0', AUTH_OPEN_METRICS: '0' })
  })
  afterAll(async () => {
    await gw.close()
  })

  test('without a key, any spelling that reaches a protected route is 401; with the key, the same spelling gets the route', async () => {
    const canonical = new Map<string, number>()
    for (const r of PROTECTED)
      canonical.set(r.path, (await rawRequest(gw.url, rawJson(r.method, r.path, 'body' in r ? r.body : undefined, auth))).status)
    let reached = 0
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PROTECTED).chain((r) => fc.tuple(fc.constant(r), spelled(r.path), origin, query)),
        async ([route, path, prefix, q]) => {
          const target = `${prefix}${path}${q}`
          const body = 'body' in route ? route.body : undefined
          const anonymous = await rawRequest(gw.url, rawJson(route.method, target, body))
          // A spelling the router does not take is a 404 for everyone; one it takes is the key check's.
          expect([401, 404]).toContain(anonymous.status)
          if (anonymous.status === 404) return
          reached++
          expectRefusal(anonymous, 'unauthorized', route.path.startsWith('/v1/') ? 'openai' : 'gateway')
          const keyed = await rawRequest(gw.url, rawJson(route.method, target, body, auth))
          expect(keyed.status).toBe(canonical.get(route.path))
        }
      ),
      { numRuns: 150 }
    )
    // Escapes and absolute-form did reach the routes: the property was not vacuous.
    expect(reached).toBeGreaterThan(100)
  })

  test('the page, its files and the API description stay open', async () => {
    for (const path of ['/', '/app.js', '/openapi.json', '/docs/']) expect((await fetch(`${gw.url}${path}`)).status).toBe(200)
  })
})

test('RATE_LIMIT_MAX counts every spelling of a route as that route', async () => {
  const gw = await startGateway({ API_KEYS: KEY, RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000' })
  try {
    const targets = ['/v1/models', '/%76%31/models', 'http://x/v1/models', '/v1/m%6Fdels', '/%76%31/m%6fdels?x']
    const statuses = []
    for (const target of targets) statuses.push((await rawRequest(gw.url, rawJson('GET', target, undefined, auth))).status)
    expect(statuses).toEqual([200, 200, 200, 429, 429])
  } finally {
    await gw.close()
  }
})

describe('nesting is bounded at the edge, in every JSON field', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startGateway({}, { tokens: 2 })
  })
  afterAll(async () => {
    await gw.close()
  })

  /** JSON text nesting `depth` arrays and objects (built as text: JSON.stringify itself would overflow). */
  const nest = (depth: number, kinds: boolean[]): string => {
    const kind = (i: number) => kinds[i % kinds.length]
    let open = ''
    let close = ''
    for (let i = 0; i < depth; i++) {
      open += kind(i) ? '[' : '{"k":'
      close = (kind(i) ? ']' : '}') + close
    }
    return `${open}"x"${close}`
  }
  const DEEP = 'deep-value-goes-here'
  const bodyWith = (place: (typeof places)[number], deep: string) => JSON.stringify(place.body(DEEP)).replace(`"${DEEP}"`, deep)
  const call = { id: 'c1', name: 'lookup', args: {} }
  /** Where the deep value goes: each field of each dialect that takes arbitrary JSON. */
  const places: Array<{ path: string; dialect: 'gateway' | 'openai'; body: (deep: unknown) => unknown }> = [
    {
      path: '/api/chat',
      dialect: 'gateway',
      body: (deep) => ({
        history: [
          { role: 'user', text: 'look it up' },
          { role: 'model', toolCalls: [call] }
        ],
        toolResults: [{ id: 'c1', name: 'lookup', result: { deep } }]
      })
    },
    {
      path: '/api/chat',
      dialect: 'gateway',
      body: (deep) => ({
        message: 'again',
        history: [
          { role: 'user', text: 'look it up' },
          { role: 'model', toolCalls: [{ ...call, args: { deep } }] }
        ]
      })
    },
    {
      path: '/api/chat',
      dialect: 'gateway',
      body: (deep) => ({ message: 'hi', tools: [{ name: 'lookup', description: 'd', parameters: { type: 'object', deep } }] })
    },
    {
      path: '/v1/chat/completions',
      dialect: 'openai',
      body: (deep) => ({
        model: 'gemini-2.5-flash',
        messages: [
          { role: 'user', content: 'look it up' },
          { role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'lookup', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: 'r', deep }] }
        ]
      })
    },
    {
      path: '/v1/chat/completions',
      dialect: 'openai',
      body: (deep) => ({
        model: 'gemini-2.5-flash',
        messages: [{ role: 'user', content: 'hi' }],
        tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', deep } } }]
      })
    }
  ]

  const restarts = async () =>
    Number((await (await fetch(`${gw.url}/metrics`)).text()).match(/^gateway_worker_restarts_total\S* (\d+)/m)?.[1] ?? 0)

  test('deeper than the bound: 400 bad_request in the dialect, no worker touched; a turn still works after', async () => {
    const before = await restarts()
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...places),
        fc.integer({ min: JSON_MAX_DEPTH, max: 6_000 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
        async (place, depth, kinds) => {
          const res = await rawRequest(gw.url, rawJson('POST', place.path, bodyWith(place, nest(depth, kinds))))
          expectRefusal(res, 'bad_request', place.dialect)
          expect(res.body).toMatch(/nests/)
        }
      ),
      { numRuns: 60 }
    )
    expect(await restarts()).toBe(before)
    expect(terminal(await postChat(gw.url, { message: 'still fine?' }))[0]!.event).toBe('done')
  })

  test('within the bound: never refused for nesting, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...places), fc.integer({ min: 0, max: 40 }), async (place, depth) => {
        const res = await rawRequest(gw.url, rawJson('POST', place.path, bodyWith(place, nest(depth, [true, false]))))
        expect(res.status).toBeLessThan(500)
        expect(res.body).not.toMatch(/nests arrays/)
      }),
      { numRuns: 20 }
    )
  })
})

describe('refusals made before any route runs answer in the registry shape', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startGateway({ REQUEST_TIMEOUT_MS: '1000' })
  })
  afterAll(async () => {
    await gw.close()
  })

  const slowBody = (target: string) =>
    rawRequest(gw.url, rawJson('POST', target, undefined, { 'content-type': 'application/json', 'content-length': '100' }), ['{"mess'])
  const cases: Array<[string, () => Promise<RawResponse>, keyof typeof errorCodes, 'gateway' | 'openai']> = [
    ['a bad %-escape', () => rawRequest(gw.url, rawJson('GET', '/api/%zz', undefined)), 'bad_request', 'gateway'],
    ['a bad %-escape under /v1', () => rawRequest(gw.url, rawJson('GET', '/v1/%zz', undefined)), 'bad_request', 'openai'],
    ['a broken request line', () => rawRequest(gw.url, 'NOT A REQUEST\r\n\r\n'), 'bad_request', 'gateway'],
    [
      'broken chunked framing',
      () =>
        rawRequest(
          gw.url,
          rawJson('POST', '/v1/chat/completions', undefined, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }),
          ['zz\r\n{}\r\n']
        ),
      'bad_request',
      'openai'
    ],
    [
      'headers over the limit',
      () => rawRequest(gw.url, rawJson('GET', '/api/x', undefined, { 'x-big': 'a'.repeat(20_000) })),
      'headers_too_large',
      'gateway'
    ],
    ['a body that never finishes', () => slowBody('/api/chat'), 'request_timeout', 'gateway'],
    ['a body that never finishes, /v1', () => slowBody('/v1/chat/completions'), 'request_timeout', 'openai'],
    [
      'an Expect other than 100-continue',
      () => rawRequest(gw.url, rawJson('POST', '/api/chat', '{"message":"x"}', { expect: '200-ok' })),
      'expectation_failed',
      'gateway'
    ],
    [
      'an Expect other than 100-continue, /v1',
      () => rawRequest(gw.url, rawJson('POST', '/v1/chat/completions', '{}', { expect: '200-ok' })),
      'expectation_failed',
      'openai'
    ],
    ['an unknown route under an escaped /v1', () => rawRequest(gw.url, rawJson('GET', '/%76%31/nope', undefined)), 'not_found', 'openai']
  ]
  test.each(cases)('%s', async (_name, send, code, dialect) => {
    expectRefusal(await send(), code, dialect)
  })

  test('a 404 quotes the decoded path without its control characters', async () => {
    const res = await rawRequest(gw.url, rawJson('GET', '/nope%00%0Ahere%c2%9b31m%e2%80%a8', undefined))
    expectRefusal(res, 'not_found', 'gateway')
    expect(res.json.error.message).toBe('No route GET /nope??here?31m?.')
  })

  test('a stream id of the longest allowed length reaches the route (404 stream_not_found, not a parser refusal)', async () => {
    expectRefusal(
      await rawRequest(gw.url, rawJson('GET', `/api/chat/streams/${'a'.repeat(128)}`, undefined)),
      'stream_not_found',
      'gateway'
    )
  })
})
