import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { postChat, replyText, terminal, type ChatResult } from '../helpers/sse.js'
import { startGateway, until, type TestGateway } from '../helpers/gateway.js'

let gw: TestGateway
// No upstream retries here: every upstream failure must reach the client as its own error event.
beforeAll(async () => {
  gw = await startGateway({ UPSTREAM_RETRIES: '0', STREAM_TTFT_TIMEOUT_MS: '3000', STREAM_IDLE_TIMEOUT_MS: '1500' })
})
afterAll(async () => {
  await gw?.close()
})

const chat = (body: unknown, opts?: Parameters<typeof postChat>[2]) => postChat(gw.url, body, opts)

function expectWellFramed(r: ChatResult): void {
  expect(r.status).toBe(200)
  expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/)
  expect(r.headers.get('x-accel-buffering')).toBe('no')
  expect(r.headers.get('cache-control')).toMatch(/no-cache/)
  expect(r.events[0]?.event).toBe('meta')
  const ends = terminal(r)
  expect(ends).toHaveLength(1)
  expect(r.events.at(-1)).toBe(ends[0])
  // Every data line is exactly one line of JSON.
  for (const line of r.raw.split('\n').filter((l) => l.startsWith('data:'))) expect(() => JSON.parse(line.slice(5))).not.toThrow()
  const ids = r.events.filter((e) => e.event === 'chunk').map((e) => Number(e.id))
  ids.forEach((id, i) => expect(id).toBe(i + 1))
}

describe('a normal turn', () => {
  test('meta, chunks with increasing ids, then done with usage and timing', async () => {
    const r = await chat({ message: 'tell me about tides [[sim:tokens=30]]' })
    expectWellFramed(r)
    const meta = r.events[0]!.json
    expect(meta).toMatchObject({ model: 'gemini-2.5-flash' })
    expect(meta.requestId).toMatch(/^[0-9a-f-]{36}$/)
    expect(meta.sessionId).toMatch(/^[A-Za-z0-9_-]{8,128}$/)
    expect(r.headers.get('x-request-id')).toBe(meta.requestId)
    expect(r.events.filter((e) => e.event === 'chunk')).toHaveLength(30)
    const done = r.events.at(-1)!
    expect(done.event).toBe('done')
    expect(done.json.finishReason).toBe('STOP')
    expect(done.json.usage.outputTokens).toBe(30)
    expect(done.json.usage.totalTokens).toBe(Number(done.json.usage.promptTokens) + 30)
    expect(done.json.timing.totalMs).toBeGreaterThanOrEqual(done.json.timing.ttftMs)
  })

  test('the text is a pure function of the request: same prompt, same bytes; newlines and quotes survive framing', async () => {
    const body = { message: 'determinism please [[sim:tokens=60]]', history: [] }
    const [a, b] = await Promise.all([chat(body), chat(body)])
    expect(replyText(a)).toBe(replyText(b))
    expect(replyText(a)).toMatch(/[\n"\\]/)
  })

  test('a model, a system instruction and generation options reach the upstream', async () => {
    const base = { message: 'same words [[sim:tokens=20]]', history: [] }
    const plain = replyText(await chat(base))
    expect(replyText(await chat({ ...base, system: 'be terse' }))).not.toBe(plain)
    const limited = await chat({ ...base, generation: { maxOutputTokens: 5, temperature: 0.2 } })
    expect(limited.events.at(-1)!.json.finishReason).toBe('MAX_TOKENS')
    expect(limited.events.filter((e) => e.event === 'chunk')).toHaveLength(5)
    const pro = await chat({ ...base, model: 'gemini-2.5-pro' })
    expect(pro.events[0]!.json.model).toBe('gemini-2.5-pro')
  })

  test('a quiet stream gets ": ping" heartbeats', async () => {
    const slow = await startGateway({ SSE_HEARTBEAT_MS: '100' })
    try {
      const r = await postChat(slow.url, { message: 'slow start [[sim:ttft=1000, tokens=2]]' })
      expectWellFramed(r)
      expect(r.comments.filter((c) => c === 'ping').length).toBeGreaterThanOrEqual(2)
    } finally {
      await slow.close()
    }
  })
})

describe('sessions', () => {
  test('a continued session sends its history: the reply differs from the same message sent fresh', async () => {
    const first = await chat({ message: 'first question [[sim:tokens=8]]' })
    const sessionId = first.events[0]!.json.sessionId
    const second = await chat({ message: 'follow up [[sim:tokens=8]]', sessionId })
    expectWellFramed(second)
    expect(second.events[0]!.json.sessionId).toBe(sessionId)
    const fresh = await chat({ message: 'follow up [[sim:tokens=8]]' })
    expect(replyText(second)).not.toBe(replyText(fresh))
    // The session holds exactly the completed turn: stateless mode with that history gives the same reply.
    const stateless = await chat({
      message: 'follow up [[sim:tokens=8]]',
      history: [
        { role: 'user', text: 'first question [[sim:tokens=8]]' },
        { role: 'model', text: replyText(first) }
      ]
    })
    expect(stateless.events[0]!.json.sessionId).toBeNull()
    expect(replyText(stateless)).toBe(replyText(second))
  })

  test('a failed turn appends nothing', async () => {
    const first = await chat({ message: 'opening [[sim:tokens=6]]' })
    const sessionId = first.events[0]!.json.sessionId
    const failed = await chat({ message: 'this one fails [[sim:fail-after=2]]', sessionId })
    expect(terminal(failed)[0]!.event).toBe('error')
    const next = await chat({ message: 'next [[sim:tokens=6]]', sessionId })
    const expected = await chat({
      message: 'next [[sim:tokens=6]]',
      history: [
        { role: 'user', text: 'opening [[sim:tokens=6]]' },
        { role: 'model', text: replyText(first) }
      ]
    })
    expect(replyText(next)).toBe(replyText(expected))
  })

  test('a second concurrent turn on one session gets 409 session_busy; the lock is released after', async () => {
    const first = await chat({ message: 'hi [[sim:tokens=2]]' })
    const sessionId = first.events[0]!.json.sessionId
    let release!: () => void
    const started = new Promise<void>((resolve) => {
      release = resolve
    })
    const slow = chat(
      { message: 'slow [[sim:tokens=3, delay=150]]', sessionId },
      {
        onEvent: (e) => {
          if (e.event === 'chunk') release()
        }
      }
    )
    await started
    const busy = await chat({ message: 'again', sessionId })
    expect(busy.status).toBe(409)
    expect(busy.body).toEqual({ error: { code: 'session_busy', message: expect.any(String) } })
    expect(terminal(await slow)[0]!.event).toBe('done')
    expect((await chat({ message: 'after [[sim:tokens=1]]', sessionId })).status).toBe(200)
  })

  test('an unknown session gets 404 session_not_found', async () => {
    const r = await chat({ message: 'hi', sessionId: 'no-such-session-123' })
    expect(r.status).toBe(404)
    expect(r.body.error.code).toBe('session_not_found')
  })
})

describe('upstream failures become precise error events', () => {
  const cases: Array<[string, string, Record<string, unknown>, number]> = [
    // directive, code, expected fields, chunks before the error
    ['[[sim:status=503]]', 'upstream_unavailable', { retryable: true }, 0],
    ['[[sim:status=504]]', 'upstream_timeout', { retryable: true }, 0],
    ['[[sim:status=500]]', 'upstream_error', { retryable: true }, 0],
    ['[[sim:status=400]]', 'upstream_error', { retryable: false }, 0],
    ['[[sim:status=403]]', 'upstream_error', { retryable: false }, 0],
    ['[[sim:tokens=10, fail-after=3]]', 'upstream_error', { retryable: true }, 3],
    ['[[sim:tokens=10, drop-after=4]]', 'upstream_unavailable', { retryable: true }, 4],
    ['[[sim:block]]', 'safety_blocked', { retryable: false }, 0],
    ['[[sim:tokens=10, safety]]', 'safety_blocked', { retryable: false }, 5],
    ['[[sim:hang]]', 'upstream_timeout', { retryable: true }, 0],
    // The gap is far above the idle deadline, so a loaded machine cannot close it in time.
    ['[[sim:tokens=4, delay=5000]]', 'stream_timeout', { retryable: true }, 1]
  ]
  test.each(cases)('%s → %s', async (directive, code, fields, chunks) => {
    const r = await chat({ message: `trouble ${directive}` })
    expectWellFramed(r)
    expect(r.events.filter((e) => e.event === 'chunk')).toHaveLength(chunks)
    const end = r.events.at(-1)!
    expect(end.event).toBe('error')
    expect(end.json).toMatchObject({ code, ...fields })
    expect(typeof end.json.message).toBe('string')
  })

  test('a Gemini 429 is upstream_rate_limited with retryAfterMs, and the replica holds back for that long', async () => {
    const limited = await startGateway({ QUOTA_MAX_WAIT_MS: '0', UPSTREAM_RETRIES: '0' })
    try {
      const r = await postChat(limited.url, { message: 'quota [[sim:status=429, retry-delay=26000]]' })
      expectWellFramed(r)
      expect(r.events.at(-1)!.json).toMatchObject({ code: 'upstream_rate_limited', retryable: true, retryAfterMs: 26000 })
      const requests = limited.sim.stats().requests
      const next = await postChat(limited.url, { message: 'anything' })
      expect(next.status).toBe(429)
      expect(next.body.error.code).toBe('rate_limited')
      expect(Number(next.headers.get('retry-after'))).toBeGreaterThan(20)
      expect(limited.sim.stats().requests).toBe(requests)
    } finally {
      await limited.close()
    }
  })

  test('the total stream deadline ends a long stream with stream_timeout', async () => {
    const capped = await startGateway({ STREAM_MAX_MS: '1000' })
    try {
      const r = await postChat(capped.url, { message: 'long [[sim:tokens=40, delay=50]]' })
      expectWellFramed(r)
      expect(r.events.at(-1)!.json.code).toBe('stream_timeout')
    } finally {
      await capped.close()
    }
  })
})

test('a client that disconnects cancels the upstream call', async () => {
  const before = gw.sim.stats()
  const controller = new AbortController()
  const r = await chat(
    { message: 'long story [[sim:tokens=200, delay=20]]' },
    {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.event === 'chunk' && e.id === '3') controller.abort()
      }
    }
  )
  expect(r.events.filter((e) => e.event === 'chunk').length).toBeLessThan(200)
  await until(() => gw.sim.stats().active === before.active, 'the simulator to see the upstream stream end')
  // Ended by an abort, not run to its end for nobody.
  expect(gw.sim.stats().aborted - before.aborted).toBe(1)
  expect(gw.sim.stats().completed - before.completed).toBe(0)
})

describe('bad input is refused before admission with a documented code', () => {
  const long = 'x'.repeat(32_001)
  const cases: Array<[string, unknown, number, string, Record<string, string>?]> = [
    ['missing message', {}, 400, 'bad_request'],
    ['empty message', { message: '' }, 400, 'bad_request'],
    ['message too long', { message: long }, 400, 'bad_request'],
    ['message not a string', { message: 42 }, 400, 'bad_request'],
    ['unknown field', { message: 'hi', temperature: 1 }, 400, 'bad_request'],
    ['bad sessionId', { message: 'hi', sessionId: 'bad id!' }, 400, 'bad_request'],
    ['history and sessionId together', { message: 'hi', sessionId: 'abcdefgh', history: [] }, 400, 'bad_request'],
    ['bad history role', { message: 'hi', history: [{ role: 'system', text: 'x' }] }, 400, 'bad_request'],
    ['model not allowed', { message: 'hi', model: 'gpt-4' }, 400, 'bad_request'],
    ['generation out of range', { message: 'hi', generation: { temperature: 9 } }, 400, 'bad_request'],
    ['unknown generation field', { message: 'hi', generation: { seed: 1 } }, 400, 'bad_request'],
    ['array body', [], 400, 'bad_request']
  ]
  test.each(cases)('%s → %i %s', async (_name, body, status, code) => {
    const r = await chat(body)
    expect(r.status).toBe(status)
    expect(r.body).toEqual({ error: { code, message: expect.any(String) } })
  })

  test('an unknown field is named in the message', async () => {
    const r = await chat({ message: 'hi', colour: 'red' })
    expect(r.body.error.message).toContain('colour')
  })

  test('invalid JSON → 400 bad_request', async () => {
    const r = await chat(undefined, { rawBody: '{"message": ' })
    expect(r.status).toBe(400)
    expect(r.body.error.code).toBe('bad_request')
  })

  test.each(['application/x-www-form-urlencoded', 'text/plain'])('a %s body → 415 unsupported_media_type', async (type) => {
    const r = await chat(undefined, { rawBody: 'message=hi', headers: { 'content-type': type } })
    expect(r.status).toBe(415)
    expect(r.body.error.code).toBe('unsupported_media_type')
  })

  test('a body over BODY_LIMIT_BYTES → 413 payload_too_large', async () => {
    const r = await chat({ message: 'hi', history: Array.from({ length: 50 }, () => ({ role: 'user', text: 'y'.repeat(30_000) })) })
    expect(r.status).toBe(413)
    expect(r.body.error.code).toBe('payload_too_large')
  })

  test('an unknown route → 404 not_found as JSON', async () => {
    const res = await fetch(`${gw.url}/api/nope`)
    expect(res.status).toBe(404)
    expect(((await res.json()) as any).error.code).toBe('not_found')
  })
})
