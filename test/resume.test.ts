// A client that loses its connection resumes with Last-Event-ID and gets the same bytes.
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { postChat, replyText, resume, terminal, type ChatResult } from './helpers/sse.js'
import { startGateway, until, type TestGateway } from './helpers/gateway.js'
import { startSharedRedis } from './helpers/redis.js'
import { lacks } from './helpers/system.js'

const PROMPT = 'a long answer to resume [[sim:tokens=30, delay=25]]'
const chunkIds = (r: ChatResult) => r.events.filter((e) => e.event === 'chunk').map((e) => Number(e.id))

/** Starts a turn and drops the connection right after chunk `dropAfter`; returns what the client had. */
async function dropped(base: string, dropAfter: number): Promise<{ requestId: string; seen: ChatResult }> {
  const controller = new AbortController()
  const seen = await postChat(
    base,
    { message: PROMPT, history: [] },
    {
      signal: controller.signal,
      onEvent: (e) => {
        if (e.event === 'chunk' && Number(e.id) === dropAfter) controller.abort()
      }
    }
  )
  return { requestId: seen.events[0]!.json.requestId, seen }
}

describe('in one replica (memory)', () => {
  let gw: TestGateway
  let reference: string
  beforeAll(async () => {
    gw = await startGateway({ RESUME_GRACE_MS: '3000', RESUME_TTL_MS: '1000' })
    reference = replyText(await postChat(gw.url, { message: PROMPT, history: [] }))
  })
  afterAll(async () => {
    await gw?.close()
  })

  test('with a grace period, a dropped client resumes and gets the same text byte for byte', async () => {
    const { requestId, seen } = await dropped(gw.url, 5)
    expect(chunkIds(seen)).toEqual([1, 2, 3, 4, 5])
    const rest = await resume(gw.url, requestId, 5)
    expect(rest.status).toBe(200)
    expect(rest.headers.get('content-type')).toMatch(/^text\/event-stream/)
    expect(chunkIds(rest)[0]).toBe(6)
    expect(chunkIds(rest)).toEqual(Array.from({ length: 25 }, (_, i) => i + 6))
    expect(terminal(rest).map((e) => e.event)).toEqual(['done'])
    expect(replyText(seen) + replyText(rest)).toBe(reference)
  })

  test('a finished stream replays in full from Last-Event-ID 0, and only the tail after a later id', async () => {
    const full = await postChat(gw.url, { message: 'short one [[sim:tokens=5]]', history: [] })
    const requestId = full.events[0]!.json.requestId
    const again = await resume(gw.url, requestId)
    expect(replyText(again)).toBe(replyText(full))
    expect(again.events.at(-1)!.event).toBe('done')
    expect(chunkIds(await resume(gw.url, requestId, 3))).toEqual([4, 5])
  })

  test('an unknown stream is 404 stream_not_found; one that ended long ago is 204', async () => {
    const unknown = await resume(gw.url, 'no-such-stream-0001', 0)
    expect(unknown.status).toBe(404)
    expect(unknown.body.error.code).toBe('stream_not_found')
    const r = await postChat(gw.url, { message: 'expire me [[sim:tokens=2]]', history: [] })
    const requestId = r.events[0]!.json.requestId
    await until(async () => (await fetch(`${gw.url}/api/chat/streams/${requestId}`)).status === 204, 'the events to expire')
  })

  test('a malformed Last-Event-ID or id is 400', async () => {
    expect((await resume(gw.url, 'abcdefgh1234', 'x')).status).toBe(400)
    expect((await resume(gw.url, 'bad id!', 1)).status).toBe(400)
  })
})

describe('RESUME_GRACE_MS=0 (the default)', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startGateway({})
  })
  afterAll(async () => {
    await gw?.close()
  })

  test('a dropped client cancels the upstream at once; a resume replays what was produced, then client_disconnected', async () => {
    const before = gw.sim.stats().aborted
    const { requestId, seen } = await dropped(gw.url, 5)
    await until(() => gw.sim.stats().aborted > before, 'the upstream call to be cancelled')
    const rest = await resume(gw.url, requestId, 0)
    const ids = chunkIds(rest)
    expect(ids.slice(0, 5)).toEqual([1, 2, 3, 4, 5])
    expect(ids.length).toBeLessThan(30)
    expect(replyText(rest).startsWith(replyText(seen))).toBe(true)
    expect(rest.events.at(-1)!.json).toMatchObject({ code: 'client_disconnected', retryable: true })
  })
})

describe.skipIf(lacks('resume across replicas', 'redis-server', 'redis-cli')).each(['standalone', 'cluster'] as const)(
  'across replicas (Redis %s)',
  (mode) => {
    let redis: { env: Record<string, string>; stop(): Promise<void> }
    let a: TestGateway
    let b: TestGateway
    beforeAll(async () => {
      redis = await startSharedRedis(mode)
      const env = { ...redis.env, RESUME_GRACE_MS: '3000' }
      ;[a, b] = await Promise.all([startGateway(env), startGateway(env)])
    })
    afterAll(async () => {
      await Promise.all([a?.close(), b?.close()])
      await redis?.stop()
    })

    test('a stream produced by one replica resumes on another, live, byte for byte', async () => {
      const reference = replyText(await postChat(a.url, { message: PROMPT, history: [] }))
      const { requestId, seen } = await dropped(a.url, 4)
      const rest = await resume(b.url, requestId, 4)
      expect(chunkIds(rest)[0]).toBe(5)
      expect(rest.events.at(-1)!.event).toBe('done')
      expect(replyText(seen) + replyText(rest)).toBe(reference)
    })

    test('a finished stream replays from another replica; unknown streams are 404 there too', async () => {
      const full = await postChat(a.url, { message: 'done already [[sim:tokens=4]]', history: [] })
      const again = await resume(b.url, full.events[0]!.json.requestId, 0)
      expect(again.raw).toBe(full.raw.slice(full.raw.indexOf('id: 1')))
      expect((await resume(b.url, 'unknown-stream-42', 0)).status).toBe(404)
    })
  }
)
