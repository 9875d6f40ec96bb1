// The OpenAI-compatible endpoint, driven by the official openai client.
import OpenAI from 'openai'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { postChat, replyText } from './helpers/sse.js'
import { startGateway, until, type TestGateway } from './helpers/gateway.js'

let gw: TestGateway
let client: OpenAI
beforeAll(async () => {
  gw = await startGateway({ UPSTREAM_RETRIES: '0', API_KEYS: 'sk-test-key-1' })
  client = new OpenAI({ apiKey: 'sk-test-key-1', baseURL: `${gw.url}/v1`, maxRetries: 0 })
})
afterAll(async () => {
  await gw?.close()
})

/** What /api/chat answers for the same conversation: the reference text. */
async function reference(message: string, system?: string): Promise<string> {
  return replyText(
    await postChat(
      gw.url,
      {
        message,
        history: [
          { role: 'user', text: 'earlier' },
          { role: 'model', text: 'noted' }
        ],
        ...(system ? { system } : {})
      },
      { headers: { authorization: 'Bearer sk-test-key-1' } }
    )
  )
}
const messages = (content: string) => [
  { role: 'system' as const, content: 'be brief' },
  { role: 'user' as const, content: 'earlier' },
  { role: 'assistant' as const, content: 'noted' },
  { role: 'user' as const, content }
]

test('GET /v1/models lists the allowed models', async () => {
  const models = await client.models.list()
  expect(models.data.map((m) => m.id)).toEqual(gw.config.allowedModels)
})

test('non-streaming: one chat.completion with the whole reply and usage', async () => {
  const completion = await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: messages('hello there [[sim:tokens=9]]') })
  expect(completion.object).toBe('chat.completion')
  expect(completion.choices[0]!.message.content).toBe(await reference('hello there [[sim:tokens=9]]', 'be brief'))
  expect(completion.choices[0]!.finish_reason).toBe('stop')
  expect(completion.usage!.completion_tokens).toBe(9)
})

test('streaming: chat.completion.chunk deltas add up to the same text, then usage', async () => {
  const stream = await client.chat.completions.create({
    model: 'gemini-2.5-flash',
    messages: messages('stream it [[sim:tokens=12]]'),
    stream: true,
    stream_options: { include_usage: true }
  })
  let text = ''
  let finish: string | null = null
  let usage: unknown
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? ''
    finish = chunk.choices[0]?.finish_reason ?? finish
    usage = chunk.usage ?? usage
  }
  expect(text).toBe(await reference('stream it [[sim:tokens=12]]', 'be brief'))
  expect(finish).toBe('stop')
  expect(usage).toMatchObject({ completion_tokens: 12 })
})

test('abort: the upstream call is cancelled', async () => {
  const controller = new AbortController()
  const before = gw.sim.stats().aborted
  const stream = await client.chat.completions.create(
    { model: 'gemini-2.5-flash', messages: messages('long [[sim:tokens=300, delay=20]]'), stream: true },
    { signal: controller.signal }
  )
  let received = 0
  try {
    for await (const _ of stream) if (++received === 3) controller.abort()
  } catch (err) {
    expect((err as Error).name).toMatch(/Abort/)
  }
  expect(received).toBeLessThan(300)
  await until(() => gw.sim.stats().aborted > before, 'the upstream to be cancelled')
})

test('non-streaming abort: a client that leaves cancels the upstream call before the reply ends', async () => {
  // A 30 s reply: the simulator sees the abort long before it could have completed.
  const before = gw.sim.stats()
  const controller = new AbortController()
  const pending = client.chat.completions
    .create({ model: 'gemini-2.5-flash', messages: messages('long [[sim:tokens=600, delay=50]]') }, { signal: controller.signal })
    .catch((e: unknown) => e)
  await until(() => gw.sim.stats().started > before.started, 'the upstream call to start')
  controller.abort()
  expect((await pending) as Error).toBeInstanceOf(OpenAI.APIUserAbortError)
  await until(() => gw.sim.stats().aborted > before.aborted, 'the upstream to be cancelled')
  expect(gw.sim.stats().completed).toBe(before.completed)
})

test.each([
  [
    'a body over BODY_LIMIT_BYTES is a 413',
    'application/json',
    JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'a'.repeat(1100 << 10) }] }),
    413,
    'payload_too_large'
  ],
  ['a text/plain body is a 415', 'text/plain', 'hello', 415, 'unsupported_media_type'],
  ['malformed JSON is a 400', 'application/json', '{"model":', 400, 'bad_request']
])('edge refusals keep the registry codes and statuses: %s', async (_name, type, body, status, code) => {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: 'Bearer sk-test-key-1', 'content-type': type },
    body
  })
  expect(res.status).toBe(status)
  expect(await res.json()).toEqual({ error: { message: expect.any(String), type: 'invalid_request_error', code } })
})

test.each([
  ['an upstream 429 is a 429', 'gemini-2.5-flash', 'q [[sim:status=429, retry-delay=100]]', 429, 'upstream_rate_limited'],
  ['an upstream 503 is a 503', 'gemini-2.5-flash', 'q [[sim:status=503]]', 503, 'upstream_unavailable'],
  ['an unknown model is a 400', 'gpt-4o', 'hi', 400, 'bad_request']
])("errors use OpenAI's shape: %s", async (_name, model, content, status, code) => {
  const err = await client.chat.completions.create({ model, messages: [{ role: 'user', content }] }).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(OpenAI.APIError)
  expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(status)
  expect((err as InstanceType<typeof OpenAI.APIError>).code).toBe(code)
  expect((err as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({ message: expect.any(String), type: expect.any(String), code })
})

test('a wrong key is a 401 authentication_error; an invalid body a 400', async () => {
  const wrong = new OpenAI({ apiKey: 'nope', baseURL: `${gw.url}/v1`, maxRetries: 0 })
  const err = (await wrong.models.list().catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>
  expect(err.status).toBe(401)
  expect(err.error).toMatchObject({ type: 'authentication_error', code: 'unauthorized' })
  const bad = (await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [] }).catch((e: unknown) => e)) as InstanceType<
    typeof OpenAI.APIError
  >
  expect(bad.status).toBe(400)
  expect(bad.error).toMatchObject({ type: 'invalid_request_error', code: 'bad_request' })
})
