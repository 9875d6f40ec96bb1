// The simulator's other wires: Vertex AI's paths and token endpoint, the per-minute quota Gemini
// enforces per project and model, OpenAI's chat completions, and unary generateContent.
import { afterEach, describe, expect, it } from 'vitest'
import { startSimulator, type Simulator } from '../../src/simulator/index.js'

let sim: Simulator | undefined
afterEach(async () => {
  await sim?.close()
  sim = undefined
})
const start = async (options: Parameters<typeof startSimulator>[0] = {}) =>
  (sim = await startSimulator({ ttftMs: 0, delayMs: 0, tokens: 4, ...options }))
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${sim!.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body)
  })
const ask = (text: string) => ({ contents: [{ role: 'user', parts: [{ text }] }] })
const VERTEX = '/v1/projects/p/locations/southamerica-east1/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse'
const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url')
const jwt = (claims: object) => `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}.c2lnbmF0dXJl`
const grant = (assertion: string) =>
  fetch(`${sim!.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString()
  })

describe('Vertex AI', () => {
  const now = () => Math.floor(Date.now() / 1000)
  const claims = () => ({
    iss: 'sa@p.iam.gserviceaccount.com',
    scope: 'https://www.googleapis.com/auth/cloud-platform',
    aud: `${sim!.url}/token`,
    iat: now(),
    exp: now() + 3600
  })

  it("refuses a call without a token it issued with Google's 401 UNAUTHENTICATED", async () => {
    await start()
    for (const headers of [{}, { authorization: 'Bearer ya29.made-up' }] as Array<Record<string, string>>) {
      const res = await post(VERTEX, ask('hi'), headers)
      expect(res.status).toBe(401)
      expect(((await res.json()) as any).error).toMatchObject({ code: 401, status: 'UNAUTHENTICATED' })
    }
  })

  it('issues a token for a service account JWT (RFC 7523) and serves the region path with it', async () => {
    await start()
    const res = await grant(jwt(claims()))
    expect(res.status).toBe(200)
    const token = (await res.json()) as { access_token: string; expires_in: number; token_type: string }
    expect(token).toMatchObject({ token_type: 'Bearer', expires_in: 3600 })
    const stream = await post(VERTEX, ask('hi'), { authorization: `Bearer ${token.access_token}` })
    expect(stream.status).toBe(200)
    expect(await stream.text()).toContain('"finishReason":"STOP"')
    expect(sim!.stats().tokensIssued).toBe(1)
  })

  it.each([
    ['another audience', { aud: 'https://example.com/other' }, /intended for the token endpoint/],
    ['no cloud-platform scope', { scope: 'https://www.googleapis.com/auth/drive' }, /Invalid OAuth scope/],
    ['an expired assertion', { iat: 1, exp: 2 }, /short-lived token/]
  ])('refuses a JWT with %s (invalid_grant)', async (_name, change, message) => {
    await start()
    const res = await grant(jwt({ ...claims(), ...change }))
    expect(res.status).toBe(400)
    const body = (await res.json()) as { error: string; error_description: string }
    expect(body.error).toBe('invalid_grant')
    expect(body.error_description).toMatch(message)
  })
})

it('SIM_RPM: past the quota of one caller and model, a 429 with QuotaFailure naming the model and a RetryInfo delay', async () => {
  await start({ rpm: 1 })
  const call = (key: string, model = 'gemini-2.5-flash') =>
    post(`/v1beta/models/${model}:streamGenerateContent?alt=sse`, ask('hi'), { 'x-goog-api-key': key })
  expect((await call('a')).status).toBe(200)
  const limited = await call('a')
  expect(limited.status).toBe(429)
  const { error } = (await limited.json()) as any
  expect(error.status).toBe('RESOURCE_EXHAUSTED')
  expect(error.details[0].violations[0].quotaDimensions).toEqual({ location: 'global', model: 'gemini-2.5-flash' })
  expect(error.details.at(-1).retryDelay).toMatch(/^\d+s$/)
  // Quotas are per project (key) and per model.
  expect((await call('b')).status).toBe(200)
  expect((await call('a', 'gemini-2.5-pro')).status).toBe(200)
  expect(sim!.stats().rateLimited).toBe(1)
})

it('unary generateContent answers the whole reply at once, its text in one part', async () => {
  await start()
  const res = await post('/v1beta/models/gemini-2.5-flash:generateContent', ask('hi'))
  const body = (await res.json()) as any
  expect(body.candidates[0].content.parts).toHaveLength(1)
  expect(body.candidates[0].finishReason).toBe('STOP')
  expect(body.usageMetadata.candidatesTokenCount).toBe(4)
})

describe('OpenAI chat completions', () => {
  const tools = [
    { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } } }
  ]
  const events = (text: string) =>
    text
      .split('\n\n')
      .filter(Boolean)
      .map((e) => e.replace(/^data: /, ''))

  it('streams deltas, a call in pieces as vLLM does, the finish, usage when asked, then [DONE]', async () => {
    await start()
    const res = await post('/v1/chat/completions', {
      model: 'llama',
      stream: true,
      stream_options: { include_usage: true },
      tools,
      messages: [{ role: 'user', content: 'time? [[sim:tools=get_time, think=1]]' }]
    })
    const data = events(await res.text())
    expect(data.at(-1)).toBe('[DONE]')
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d))
    expect(chunks[0].choices[0].delta).toMatchObject({ role: 'assistant', reasoning_content: expect.any(String) })
    const pieces = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])
    expect(pieces).toHaveLength(3)
    expect(pieces[0]).toMatchObject({ index: 0, id: expect.any(String), type: 'function', function: { name: 'get_time', arguments: '' } })
    expect(JSON.parse(pieces.map((p: any) => p.function.arguments).join(''))).toEqual({ zone: expect.any(String) })
    expect(chunks.at(-2).choices[0].finish_reason).toBe('tool_calls')
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens_details: { reasoning_tokens: 12 } } })
  })

  it('answers one chat.completion unstreamed; a 429 carries Retry-After', async () => {
    await start()
    const res = await post('/v1/chat/completions', {
      model: 'llama',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' }
      ]
    })
    const body = (await res.json()) as any
    expect(body).toMatchObject({
      object: 'chat.completion',
      choices: [{ finish_reason: 'stop', message: { role: 'assistant', content: expect.any(String) } }]
    })
    expect(body.usage.completion_tokens).toBe(4)
    const limited = await post('/v1/chat/completions', {
      model: 'llama',
      messages: [{ role: 'user', content: 'hi [[sim:status=429, retry-delay=7000]]' }]
    })
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toBe('7')
    expect(((await limited.json()) as any).error).toMatchObject({ type: 'rate_limit_error', code: 429 })
  })
})
