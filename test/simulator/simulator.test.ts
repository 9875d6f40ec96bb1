import { ApiError } from '@google/genai'
import { Value } from '@sinclair/typebox/value'
import envSchema from 'env-schema'
import { describe, expect, it } from 'vitest'
import { parseDirectives } from '../../src/simulator/directives.js'
import { simulatorEnvSchema, simulatorOptionsFrom, startSimulator, type Simulator } from '../../src/simulator/index.js'
import {
  apiErrorBody,
  collect,
  collectFailure,
  fetchStats,
  finishReasons,
  MODEL,
  modelTurn,
  postRaw,
  start,
  stream,
  client,
  textOf,
  userTurn,
  waitForStats
} from './sim-helpers.js'

describe('normal stream', () => {
  it('streams ceil(tokens / tokensPerChunk) chunks with cumulative usage, one responseId and STOP last', async () => {
    const sim = await start({ tokens: 10, tokensPerChunk: 3 })
    const chunks = await collect(sim, 'hello there simulator', { systemInstruction: 'be brief' })

    expect(chunks).toHaveLength(4)
    expect(chunks.map((c) => c.usageMetadata?.candidatesTokenCount)).toEqual([3, 6, 9, 10])
    for (const chunk of chunks) {
      expect(chunk.usageMetadata?.promptTokenCount).toBe(5)
      expect(chunk.usageMetadata?.totalTokenCount).toBe(5 + chunk.usageMetadata!.candidatesTokenCount!)
      expect(chunk.modelVersion).toBe(MODEL)
      expect(chunk.candidates?.[0]?.index).toBe(0)
      expect(chunk.candidates?.[0]?.content?.role).toBe('model')
    }
    expect(chunks[0]!.responseId).toMatch(/^\S+$/)
    expect(new Set(chunks.map((c) => c.responseId)).size).toBe(1)
    expect(finishReasons(chunks)).toEqual([undefined, undefined, undefined, 'STOP'])
    expect(chunks[3]!.text).toBeTruthy()

    const text = textOf(chunks)
    expect(text.startsWith(' ')).toBe(false)
    expect(text.split(' ')).toHaveLength(10)
  })

  it('defaults to 48 tokens, one per chunk', async () => {
    const sim = await start()
    const chunks = await collect(sim, 'hi')
    expect(chunks).toHaveLength(48)
    expect(chunks.at(-1)!.usageMetadata?.candidatesTokenCount).toBe(48)
  })

  it('stops at generationConfig.maxOutputTokens with MAX_TOKENS', async () => {
    const sim = await start({ tokens: 20 })
    const chunks = await collect(sim, 'hi', { maxOutputTokens: 7 })
    expect(chunks).toHaveLength(7)
    expect(finishReasons(chunks).at(-1)).toBe('MAX_TOKENS')
    expect(chunks.at(-1)!.usageMetadata?.candidatesTokenCount).toBe(7)

    const unlimited = await collect(sim, 'hi', { maxOutputTokens: 50 })
    expect(unlimited).toHaveLength(20)
    expect(finishReasons(unlimited).at(-1)).toBe('STOP')
  })
})

describe('reply text', () => {
  it('is a pure function of the contents, the system instruction and the seed', async () => {
    const sim = await start({ tokens: 30 })
    const fresh = textOf(await collect(sim, 'tell me a story'))
    expect(textOf(await collect(sim, 'tell me a story'))).toBe(fresh)

    const continued = [userTurn('hello'), modelTurn('hi there'), userTurn('tell me a story')]
    expect(textOf(await collect(sim, continued))).not.toBe(fresh)
    expect(textOf(await collect(sim, 'tell me a story', { systemInstruction: 'You are a pirate.' }))).not.toBe(fresh)
    expect(textOf(await collect(sim, 'tell me a story', { maxOutputTokens: 1000 }))).toBe(fresh)

    const reseeded = await start({ tokens: 30, seed: 'another seed' })
    expect(textOf(await collect(reseeded, 'tell me a story'))).not.toBe(fresh)
  })

  it('sprinkles newlines, quotes and backslashes into about one token in 15', async () => {
    const sim = await start({ tokens: 1500, tokensPerChunk: 100 })
    const tokens = textOf(await collect(sim, 'a long one')).split(' ')
    expect(tokens).toHaveLength(1500)
    const awkward = tokens.filter((t) => /["\\\n]/.test(t))
    expect(awkward.length).toBeGreaterThan(1500 / 15 / 2)
    expect(awkward.length).toBeLessThan((1500 / 15) * 2)
    for (const char of ['\n', '"', '\\']) expect(awkward.some((t) => t.includes(char))).toBe(true)
  })
})

describe('timing', () => {
  it('sends headers at once and waits ttft before the first chunk', async () => {
    const sim = await start()
    const ai = client(sim)
    const begin = performance.now()
    const response = await ai.models.generateContentStream({ model: MODEL, contents: 'hi [[sim:ttft=150, tokens=2]]' })
    expect((await fetchStats(sim)).started).toBe(1)
    const first = await response.next()
    expect(first.value?.text).toBeTruthy()
    // Timers may fire up to a millisecond early against performance.now().
    expect(performance.now() - begin).toBeGreaterThanOrEqual(149)
  })

  it('uses the server ttft when the message has none', async () => {
    const sim = await start({ ttftMs: 120, tokens: 1 })
    const begin = performance.now()
    await collect(sim, 'hi')
    expect(performance.now() - begin).toBeGreaterThanOrEqual(119)
  })

  it('answers with 200 SSE headers before a long ttft', async () => {
    const sim = await start()
    const controller = new AbortController()
    const res = await fetch(`${sim.url}/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`, {
      method: 'POST',
      body: JSON.stringify({ contents: [userTurn('[[sim:ttft=600000]]')] }),
      signal: controller.signal
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    controller.abort()
    await waitForStats(sim, (s) => s.aborted === 1 && s.active === 0)
  })

  it('waits delay between chunks', async () => {
    const sim = await start()
    const chunkTimes: number[] = []
    // Measured from before the request: the last chunk cannot leave before three delays have passed,
    // however the arrivals bunch up on a busy client (gaps between arrivals prove nothing).
    const begin = performance.now()
    for await (const _ of await stream(sim, 'hi [[sim:tokens=4]] [[sim:delay=40]]')) chunkTimes.push(performance.now())
    expect(chunkTimes).toHaveLength(4)
    expect(chunkTimes[3]! - begin).toBeGreaterThanOrEqual(3 * 40 - 3)
  })
})

describe('directives', () => {
  it('parses several brackets and comma or semicolon lists, ignoring unknown names and bad values', () => {
    expect(parseDirectives('a [[sim:tokens=5]] b [[sim:delay=0]]')).toEqual({ tokens: 5, delayMs: 0 })
    expect(parseDirectives('[[sim: tokens = 5, ttft=7; hang ;times=2]]')).toEqual({ tokens: 5, ttftMs: 7, hang: true, times: 2 })
    expect(parseDirectives('[[sim:bogus=1, constructor=3, tokens=-1, delay=x, status=200, status=503, block, safety]]')).toEqual({
      status: 503,
      block: true,
      safety: true
    })
    expect(parseDirectives('[[sim:fail-after=2,drop-after=3,retry-delay=1500]]')).toEqual({
      failAfter: 2,
      dropAfter: 3,
      retryDelayMs: 1500
    })
    expect(parseDirectives('[sim:tokens=5] [[SIM:tokens=5]] plain text')).toEqual({})
  })

  it('tokens=N sets the reply length', async () => {
    const sim = await start()
    const chunks = await collect(sim, 'hi [[sim:tokens=5]]')
    expect(chunks).toHaveLength(5)
    expect(chunks.at(-1)!.usageMetadata?.candidatesTokenCount).toBe(5)
  })

  it('reads directives from the last user turn only', async () => {
    const sim = await start({ tokens: 3 })
    const history = [userTurn('[[sim:status=500]] [[sim:tokens=9]]'), modelTurn('sure'), userTurn('and now?')]
    const chunks = await collect(sim, history)
    expect(chunks).toHaveLength(3)
    expect(finishReasons(chunks).at(-1)).toBe('STOP')

    const { error } = await collectFailure(sim, [...history, modelTurn('ok'), userTurn('[[sim:status=500]]')])
    expect((error as ApiError).status).toBe(500)
  })

  it('status=429 answers RESOURCE_EXHAUSTED with QuotaFailure and then RetryInfo', async () => {
    const sim = await start()
    const { chunks, error } = await collectFailure(sim, 'hi [[sim:status=429]]')
    expect(chunks).toHaveLength(0)
    expect((error as ApiError).status).toBe(429)
    const body = apiErrorBody(error).error
    expect(body).toMatchObject({ code: 429, status: 'RESOURCE_EXHAUSTED' })
    const types = body.details!.map((d) => d['@type'])
    expect(types.indexOf('type.googleapis.com/google.rpc.QuotaFailure')).toBeGreaterThanOrEqual(0)
    expect(types.indexOf('type.googleapis.com/google.rpc.QuotaFailure')).toBeLessThan(
      types.indexOf('type.googleapis.com/google.rpc.RetryInfo')
    )
    expect(body.details!.find((d) => d['@type'] === 'type.googleapis.com/google.rpc.RetryInfo')!.retryDelay).toBe('26s')
  })

  it('retry-delay=MS and the retryDelayMs option set the RetryInfo delay', async () => {
    const retryDelayOf = async (sim: Simulator, text: string) => {
      const { error } = await collectFailure(sim, text)
      return apiErrorBody(error).error.details!.find((d) => d['@type'] === 'type.googleapis.com/google.rpc.RetryInfo')!.retryDelay
    }
    const sim = await start({ retryDelayMs: 3000 })
    expect(await retryDelayOf(sim, '[[sim:status=429]]')).toBe('3s')
    expect(await retryDelayOf(sim, '[[sim:status=429, retry-delay=1500]]')).toBe('1.500s')
    expect(await retryDelayOf(sim, '[[sim:status=429]] [[sim:retry-delay=0]]')).toBe('0s')
  })

  it.each([
    [400, 'INVALID_ARGUMENT'],
    [403, 'PERMISSION_DENIED'],
    [404, 'NOT_FOUND'],
    [500, 'INTERNAL'],
    [503, 'UNAVAILABLE'],
    [504, 'DEADLINE_EXCEEDED'],
    [418, 'UNKNOWN']
  ])('status=%i answers a JSON %s error', async (code, status) => {
    const sim = await start()
    const { error } = await collectFailure(sim, `[[sim:status=${code}]]`)
    expect((error as ApiError).status).toBe(code)
    const body = apiErrorBody(error).error
    expect(body).toMatchObject({ code, status })
    expect(body.message).toBeTruthy()
    expect(body.details).toBeUndefined()
    expect(await fetchStats(sim)).toMatchObject({ requests: 1, started: 0 })
  })

  it('fail-after=N sends N chunks and then an error chunk', async () => {
    const sim = await start()
    const { chunks, error } = await collectFailure(sim, 'hi [[sim:fail-after=2]]')
    expect(chunks).toHaveLength(2)
    expect(finishReasons(chunks)).toEqual([undefined, undefined])
    expect((error as ApiError).status).toBe(500)
    expect((error as ApiError).message).toContain('"status":"INTERNAL"')
    await waitForStats(sim, (s) => s.completed === 1 && s.active === 0)

    // Past the end of the reply the error replaces the finishReason.
    const late = await collectFailure(sim, 'hi [[sim:tokens=3, fail-after=5]]')
    expect(finishReasons(late.chunks)).toEqual([undefined, undefined, undefined])
    expect((late.error as ApiError).status).toBe(500)
  })

  it('drop-after=N sends N chunks and then destroys the socket', async () => {
    const sim = await start({ delayMs: 5 })
    const { chunks, error } = await collectFailure(sim, 'hi [[sim:drop-after=3]]')
    expect(chunks).toHaveLength(3)
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toBe('terminated')
    await waitForStats(sim, (s) => s.aborted === 1 && s.active === 0 && s.completed === 0)
  })

  it('hang sends headers and then nothing until the client aborts', async () => {
    const sim = await start()
    const before = await fetchStats(sim)
    const controller = new AbortController()
    const response = await stream(sim, 'hi [[sim:hang]]', { abortSignal: controller.signal })
    await waitForStats(sim, (s) => s.active === before.active + 1)
    const next = response.next()
    controller.abort()
    await expect(next).rejects.toMatchObject({ name: 'AbortError' })
    const after = await waitForStats(sim, (s) => s.active === before.active)
    expect(after).toMatchObject({ started: 1, aborted: 1, completed: 0 })
  })

  it('block answers one event with promptFeedback.blockReason and no candidates', async () => {
    const sim = await start()
    const chunks = await collect(sim, 'hi [[sim:block]]')
    expect(chunks).toHaveLength(1)
    expect(chunks[0]!.promptFeedback?.blockReason).toBe('SAFETY')
    expect(chunks[0]!.candidates).toBeUndefined()
    expect(chunks[0]!.text).toBeUndefined()
    await waitForStats(sim, (s) => s.completed === 1)
  })

  it('safety sends half the chunks and then a last one with finishReason SAFETY and no text', async () => {
    const sim = await start({ tokens: 10 })
    const chunks = await collect(sim, 'hi [[sim:safety]]')
    expect(chunks).toHaveLength(6)
    expect(finishReasons(chunks)).toEqual([undefined, undefined, undefined, undefined, undefined, 'SAFETY'])
    expect(chunks[5]!.text).toBeUndefined()
    expect(textOf(chunks).split(' ')).toHaveLength(5)
    expect(chunks[5]!.usageMetadata?.candidatesTokenCount).toBe(5)
  })

  it('times=N fails only the first N identical requests', async () => {
    const sim = await start({ tokens: 3 })
    const failing = 'hi [[sim:status=503, times=2]]'
    for (let i = 0; i < 2; i++) expect(((await collectFailure(sim, failing)).error as ApiError).status).toBe(503)
    expect(finishReasons(await collect(sim, failing)).at(-1)).toBe('STOP')
    expect(finishReasons(await collect(sim, failing)).at(-1)).toBe('STOP')
    // A different body has its own count.
    expect(((await collectFailure(sim, `${failing}!`)).error as ApiError).status).toBe(503)

    const dropping = '[[sim:drop-after=1; times=1]]'
    expect((await collectFailure(sim, dropping)).error).toBeInstanceOf(TypeError)
    expect(await collect(sim, dropping)).toHaveLength(3)
  })
})

describe('wire format', () => {
  it('frames one-line JSON data events with CRLF CRLF and nothing else', async () => {
    const sim = await start({ tokens: 300, tokensPerChunk: 2 })
    const res = await postRaw(sim, JSON.stringify({ contents: [userTurn('raw please')] }))
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    const raw = await res.text()
    expect(raw.endsWith('\r\n\r\n')).toBe(true)
    expect(raw).not.toMatch(/^(event|id):/m)
    expect(raw).not.toContain('[DONE]')
    const events = raw.split('\r\n\r\n').slice(0, -1)
    expect(events).toHaveLength(150)
    let text = ''
    for (const event of events) {
      expect(event.startsWith('data: ')).toBe(true)
      expect(event).not.toMatch(/[\r\n]/)
      text += String(JSON.parse(event.slice('data: '.length)).candidates[0].content.parts[0].text)
    }
    expect(text).toContain('\n')
  })

  /** Gemini's JSON error body with its status. */
  async function expectErrorBody(res: Response, code: number, status: string): Promise<void> {
    expect(res.status).toBe(code)
    expect(res.headers.get('content-type')).toContain('application/json')
    expect(await res.json()).toMatchObject({ error: { code, status } })
  }

  it('answers 404 NOT_FOUND on unknown paths', async () => {
    const sim = await start()
    for (const res of [
      await fetch(`${sim.url}/nope`),
      await postRaw(sim, JSON.stringify({ contents: [userTurn('hi')] }), `/v1beta/models/${MODEL}:countTokens`)
    ]) {
      await expectErrorBody(res, 404, 'NOT_FOUND')
    }
  })

  it('answers 400 INVALID_ARGUMENT on bad JSON, missing contents or a non-SSE call', async () => {
    const sim = await start()
    for (const res of [
      await postRaw(sim, '{not json'),
      await postRaw(sim, '{}'),
      await postRaw(sim, JSON.stringify({ contents: [{ role: 'user' }] })),
      await postRaw(sim, JSON.stringify({ contents: [userTurn('hi')] }), `/v1beta/models/${MODEL}:streamGenerateContent`)
    ]) {
      await expectErrorBody(res, 400, 'INVALID_ARGUMENT')
    }
  })

  it('serves /healthz', async () => {
    const sim = await start()
    const res = await fetch(`${sim.url}/healthz`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ ok: true })
  })
})

describe('stats', () => {
  it('counts requests, started, completed and aborted streams', async () => {
    const sim = await start({ tokens: 2 })
    const none = { rateLimited: 0, tokensIssued: 0 }
    expect(await fetchStats(sim)).toEqual({ active: 0, started: 0, completed: 0, aborted: 0, requests: 0, ...none })
    await collect(sim, 'one')
    await collect(sim, 'two')
    await collectFailure(sim, '[[sim:status=429]]')
    await postRaw(sim, '{}', '/v1beta/models/x:unknownMethod')
    expect(await waitForStats(sim, (s) => s.completed === 2)).toEqual({
      active: 0,
      started: 2,
      completed: 2,
      aborted: 0,
      requests: 4,
      ...none
    })
    expect(sim.stats()).toEqual(await fetchStats(sim))
  })

  it('counts a client that aborts mid-stream as aborted and brings active back to 0', async () => {
    const sim = await start()
    const controller = new AbortController()
    const received: string[] = []
    const consume = async () => {
      for await (const chunk of await stream(sim, 'hi [[sim:tokens=1000, delay=20]]', { abortSignal: controller.signal })) {
        received.push(chunk.text ?? '')
        if (received.length === 2) controller.abort()
      }
    }
    await expect(consume()).rejects.toMatchObject({ name: 'AbortError' })
    expect(received).toHaveLength(2)
    expect(await waitForStats(sim, (s) => s.aborted === 1)).toMatchObject({ active: 0, started: 1, completed: 0 })
  })

  it('close() ends hung streams instead of waiting for them', async () => {
    const sim = await startSimulator({ ttftMs: 0 })
    const res = await postRaw(sim, JSON.stringify({ contents: [userTurn('[[sim:hang]]')] }))
    expect(res.status).toBe(200)
    const body = res.text()
    await sim.close()
    await expect(body).rejects.toThrow()
  })
})

describe('options', () => {
  it('the env schema works with ajv-based env loading and maps to options', () => {
    const env = envSchema({ schema: simulatorEnvSchema, data: { SIM_TOKENS: '7', SIM_TTFT_MS: '0' } })
    expect(simulatorOptionsFrom(env as never)).toEqual({
      seed: 'gateway',
      tokens: 7,
      tokensPerChunk: 1,
      ttftMs: 0,
      delayMs: 25,
      retryDelayMs: 26_000,
      rpm: 0
    })
    expect(() => envSchema({ schema: simulatorEnvSchema, data: { SIM_TOKENS_PER_CHUNK: '0' } })).toThrow(/SIM_TOKENS_PER_CHUNK/)
    expect(Value.Check(simulatorEnvSchema, Value.Create(simulatorEnvSchema))).toBe(true)
  })

  it('startSimulator rejects invalid options', async () => {
    await expect(startSimulator({ tokensPerChunk: 0 })).rejects.toThrow(/tokensPerChunk=0/)
    await expect(startSimulator({ delayMs: -1 })).rejects.toThrow(RangeError)
  })
})
