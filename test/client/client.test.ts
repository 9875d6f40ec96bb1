// The typed client against a real gateway: events in order, session continuation, errors, abort, resume.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { chat, chatText, type ChatEvent } from '../../src/client/index.js'
import { startGateway, until, type TestGateway } from '../helpers/gateway.js'

describe('client', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startGateway({ UPSTREAM_RETRIES: '0' })
  })
  afterAll(async () => {
    await gw?.close()
  })

  test('streams meta, chunks with ids 1..N, then done', async () => {
    const { events, text, meta, terminal } = await chatText({ baseUrl: gw.url, message: 'hello [[sim:tokens=6]]' })
    expect(events.map((e) => e.type)).toEqual(['meta', 'chunk', 'chunk', 'chunk', 'chunk', 'chunk', 'chunk', 'done'])
    expect(events.filter((e) => e.type === 'chunk').map((e) => (e as { id: number }).id)).toEqual([1, 2, 3, 4, 5, 6])
    expect(meta?.requestId).toMatch(/^[A-Za-z0-9_-]{8,}$/)
    expect(meta?.sessionId).toMatch(/^[A-Za-z0-9_-]{8,}$/)
    expect(meta?.model).toBe(gw.config.DEFAULT_MODEL)
    expect(text.length).toBeGreaterThan(0)
    expect(terminal).toMatchObject({ type: 'done', finishReason: 'STOP', usage: { outputTokens: 6 } })
    expect(typeof (terminal as { timing: { totalMs: number } }).timing.totalMs).toBe('number')
  })

  test('continues a session with the sessionId from meta', async () => {
    const first = await chatText({ baseUrl: gw.url, message: 'first turn [[sim:tokens=3]]' })
    const sessionId = first.meta!.sessionId!
    const second = await chatText({ baseUrl: gw.url, message: 'second turn [[sim:tokens=3]]', sessionId })
    expect(second.meta?.sessionId).toBe(sessionId)
    expect(second.terminal.type).toBe('done')
    // the session holds both turns: the prompt of the second includes the first turn and reply
    expect((second.terminal as { usage: { promptTokens: number } }).usage.promptTokens).toBeGreaterThan(
      (first.terminal as { usage: { promptTokens: number } }).usage.promptTokens
    )
  })

  test('an upstream 503 is one error event upstream_unavailable', async () => {
    const { events, terminal } = await chatText({ baseUrl: gw.url, message: 'fail [[sim:status=503]]' })
    expect(events[0]?.type).toBe('meta')
    expect(events.filter((e) => e.type === 'error')).toHaveLength(1)
    expect(terminal).toMatchObject({ type: 'error', code: 'upstream_unavailable', retryable: true })
  })

  test('a refusal before the stream (400) is yielded as one error event with its status', async () => {
    const events: ChatEvent[] = []
    for await (const e of chat({ baseUrl: gw.url, message: '' })) events.push(e)
    expect(events).toHaveLength(1)
    expect(events[0]).toMatchObject({ type: 'error', code: 'bad_request', status: 400, retryable: false })
    const unknownSession = await chatText({ baseUrl: gw.url, message: 'hi', sessionId: 'no-such-session-1234' })
    expect(unknownSession.terminal).toMatchObject({ type: 'error', code: 'session_not_found', status: 404 })
  })

  test('an unreachable gateway is one network_error event', async () => {
    const { events } = await chatText({ baseUrl: 'http://127.0.0.1:1', message: 'hi' })
    expect(events).toEqual([expect.objectContaining({ type: 'error', code: 'network_error', retryable: true })])
  })

  test('abort rejects with AbortError and the server cancels the upstream call', async () => {
    const before = gw.sim.stats().aborted
    const controller = new AbortController()
    const seen: ChatEvent[] = []
    const run = (async () => {
      for await (const e of chat({
        baseUrl: gw.url,
        message: 'long [[sim:tokens=400, delay=20]]',
        signal: controller.signal,
        resume: { attempts: 0 }
      })) {
        seen.push(e)
        if (e.type === 'chunk' && e.id === 3) controller.abort()
      }
    })()
    await expect(run).rejects.toMatchObject({ name: 'AbortError' })
    expect(seen.filter((e) => e.type === 'chunk')).toHaveLength(3)
    await until(() => gw.sim.stats().aborted > before && gw.sim.stats().active === 0, 'the upstream call to be cancelled')
  })
})

const urlOf = (input: string | URL | Request) => (typeof input === 'string' ? input : input instanceof URL ? input.href : input.url)

/** The response with its body broken (as a dropped connection breaks it) once event `id` has passed. */
function cutAfter(res: Response, source: ReadableStream<Uint8Array>, id: number): Response {
  const reader = source.getReader()
  const decoder = new TextDecoder()
  const marker = new RegExp(`^id: ${id}$`, 'm')
  let seen = ''
  const body = new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      const { done, value } = await reader.read()
      if (done) {
        ctrl.close()
        return
      }
      seen += decoder.decode(value, { stream: true })
      ctrl.enqueue(value)
      if (marker.test(seen)) {
        await reader.cancel()
        ctrl.error(new TypeError('terminated'))
      }
    }
  })
  return new Response(body, { status: res.status, headers: res.headers })
}

describe('client: thoughts and tool calls', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startGateway({ UPSTREAM_RETRIES: '0', RESUME_GRACE_MS: '3000' })
  })
  afterAll(async () => {
    await gw?.close()
  })
  const tools = [{ name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } }]

  test('thought and tool_call events come typed, on one id sequence, and chatText gathers them', async () => {
    const thinking = await chatText({ baseUrl: gw.url, message: 'hm [[sim:think=2, tokens=3]]', thinking: { include: true }, history: [] })
    expect(thinking.events.map((e) => e.type)).toEqual(['meta', 'thought', 'thought', 'chunk', 'chunk', 'chunk', 'done'])
    expect(thinking.events.flatMap((e) => ('id' in e && typeof e.id === 'number' ? [e.id] : []))).toEqual([1, 2, 3, 4, 5])
    expect(thinking.thoughts).toMatch(/^\*\*Thinking it through\*\*/)
    expect(thinking.text).not.toContain('Thinking')
    expect(thinking.terminal).toMatchObject({ type: 'done', usage: { thoughtTokens: 24 } })

    const asked = await chatText({ baseUrl: gw.url, message: 'time? [[sim:tools=get_time]]', tools })
    expect(asked.toolCalls).toEqual([
      {
        type: 'tool_call',
        eventId: 1,
        id: expect.stringMatching(/^gwc_/),
        name: 'get_time',
        args: { zone: expect.any(String) },
        signature: expect.any(String)
      }
    ])
    expect(asked.terminal).toMatchObject({ type: 'done', toolCalls: 1 })
    const answered = await chatText({
      baseUrl: gw.url,
      sessionId: asked.meta!.sessionId!,
      tools,
      toolResults: asked.toolCalls.map((c) => ({ id: c.id, name: c.name, result: { time: '10:00' } }))
    })
    expect(answered.terminal.type).toBe('done')
    expect(answered.text.length).toBeGreaterThan(0)
  })

  test('a connection dropped after thoughts resumes without repeating them', async () => {
    const options = {
      baseUrl: gw.url,
      message: 'resume a thinker [[sim:think=3, tokens=5, delay=20]]',
      thinking: { include: true },
      history: []
    }
    const reference = await chatText(options)
    let cut = false
    const flaky: typeof fetch = async (input, init) => {
      const res = await fetch(input, init)
      if (cut || urlOf(input).includes('/api/chat/streams/') || !res.body) return res
      cut = true
      return cutAfter(res, res.body, 2)
    }
    const resumed = await chatText({ ...options, fetch: flaky, resume: { backoffMs: 10 } })
    expect(resumed.events.map((e) => e.type)).toEqual(reference.events.map((e) => e.type))
    expect(resumed.thoughts).toBe(reference.thoughts)
    expect(resumed.text).toBe(reference.text)
  })
})

describe('client resume', () => {
  let gw: TestGateway
  // The grace period keeps a stream generating after its client left, so it can resume.
  beforeAll(async () => {
    gw = await startGateway({ RESUME_GRACE_MS: '3000' })
  })
  afterAll(async () => {
    await gw?.close()
  })

  test('a dropped connection resumes with Last-Event-ID, without duplicates', async () => {
    const reference = await chatText({ baseUrl: gw.url, message: 'resume me [[sim:tokens=20, delay=20]]', history: [] })
    const resumeHeaders: (string | null)[] = []
    let cut = false
    // A fetch whose first chat response body breaks after a few bytes have passed chunk 4.
    const flaky: typeof fetch = async (input, init) => {
      const res = await fetch(input, init)
      if (urlOf(input).includes('/api/chat/streams/')) {
        resumeHeaders.push(new Headers(init?.headers).get('last-event-id'))
        return res
      }
      if (cut || !res.body) return res
      cut = true
      return cutAfter(res, res.body, 4)
    }
    const resumed = await chatText({
      baseUrl: gw.url,
      message: 'resume me [[sim:tokens=20, delay=20]]',
      history: [],
      fetch: flaky,
      resume: { backoffMs: 10 }
    })
    expect(resumeHeaders.length).toBeGreaterThanOrEqual(1)
    expect(Number(resumeHeaders[0])).toBeGreaterThanOrEqual(4)
    const ids = resumed.events.filter((e) => e.type === 'chunk').map((e) => (e as { id: number }).id)
    expect(ids).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
    expect(resumed.events.filter((e) => e.type === 'meta')).toHaveLength(1)
    expect(resumed.terminal.type).toBe('done')
    expect(resumed.text).toBe(reference.text)
  })

  test('a resume answered 404 ends with an error event', async () => {
    // The body ends without a terminal event and the stream id is unknown to the gateway.
    const fake: typeof fetch = async (input, init) => {
      if (urlOf(input).includes('/api/chat/streams/')) return fetch(input, init)
      const sse =
        'event: meta\ndata: {"requestId":"unknown-stream-0001","sessionId":null,"model":"m"}\n\nid: 1\nevent: chunk\ndata: {"text":"a"}\n\n'
      return new Response(sse, { status: 200, headers: { 'content-type': 'text/event-stream' } })
    }
    const { events } = await chatText({ baseUrl: gw.url, message: 'x', fetch: fake, resume: { backoffMs: 1 } })
    expect(events.map((e) => e.type)).toEqual(['meta', 'chunk', 'error'])
    expect(events.at(-1)).toMatchObject({ code: 'stream_not_found' })
  })
})
