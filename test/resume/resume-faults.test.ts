// Resume through real gateways: a follower or a late resume never ends with the stream's terminal
// event while holding fewer events than the stream produced (stream_lost instead), never waits
// forever because pub/sub lost a message, never gets again what its Last-Event-ID says it has, never
// sees another API key's stream, and RESUME_MAX_BYTES bounds what one replica holds.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { Redis } from 'ioredis'
import { postChat, resume, terminal, type ChatResult, type SseEvent } from '../helpers/sse.js'
import { startGateway, until, type TestGateway } from '../helpers/gateway.js'
import { replicasOnRedis, type ReplicasOnRedis, type TestRedis } from '../helpers/redis.js'
import { lacks } from '../helpers/system.js'
import { redisUp, watched } from '../helpers/watched.js'

const chunkIds = (events: SseEvent[]) => events.filter((e) => e.event === 'chunk').map((e) => Number(e.id))
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1)
const codeOf = (r: ChatResult) => terminal(r).map((e) => (e.event === 'error' ? e.json.code : e.event))
const auth = (key: string) => ({ authorization: `Bearer ${key}` })

describe.skipIf(lacks('resume across replicas under faults', 'redis-server'))('two replicas sharing a faulted Redis', () => {
  let redis: TestRedis
  let admin: Redis
  let a: TestGateway
  let b: TestGateway
  let replicas: ReplicasOnRedis
  beforeAll(async () => {
    replicas = await replicasOnRedis({ REDIS_COMMAND_TIMEOUT_MS: '300', API_KEYS: 'key-a,key-b' })
    ;({ redis, admin, a, b } = replicas)
  })
  // A fault a test made is over for the next one only once both replicas see Redis answer again.
  beforeEach(async () => {
    await until(async () => (await redisUp(a)) === '1' && (await redisUp(b)) === '1', 'both replicas to see Redis up')
  })
  afterAll(async () => {
    await replicas?.close()
  })

  test('a stream that ends while Redis hangs: its follower and a late resume on another replica end with stream_lost, never short with its terminal event', async () => {
    const controller = new AbortController()
    const turn = watched((onEvent) =>
      postChat(
        a.url,
        { message: 'ends while Redis hangs [[sim:tokens=5000, delay=20]]', history: [] },
        {
          signal: controller.signal,
          headers: auth('key-a'),
          onEvent
        }
      )
    )
    await until(() => turn.chunks() >= 3, 'the stream to start')
    const requestId = turn.events[0]!.json.requestId as string
    const follower = watched((onEvent) => resume(b.url, requestId, 0, { headers: auth('key-a'), onEvent }))
    await until(() => follower.chunks() >= 3, 'the follower on the other replica to be live')

    const aborted = a.sim.stats().aborted
    redis.pause()
    try {
      await until(async () => (await redisUp(a)) === '0', 'the producer to see Redis down')
      // Events Redis cannot take: they are written while it is down, so skipped there.
      const atDown = turn.chunks()
      await until(() => turn.chunks() >= atDown + 3, 'events while Redis is down')
      controller.abort() // RESUME_GRACE_MS=0: the stream ends now, its end kept for Redis
      await turn.result
      await until(() => a.sim.stats().aborted > aborted, 'the stream to end')
    } finally {
      redis.resume()
    }

    const live = await follower.end('the follower to end')
    expect(codeOf(live)).toEqual(['stream_lost'])
    expect(chunkIds(live.events)).toEqual(upTo(chunkIds(live.events).length))

    // The producer's replica holds every event: the whole stream, then its own terminal event.
    const own = await resume(a.url, requestId, 0, { headers: auth('key-a') })
    expect(codeOf(own)).toEqual(['client_disconnected'])
    const produced = chunkIds(own.events)
    expect(produced).toEqual(upTo(produced.length))
    expect(chunkIds(live.events).length).toBeLessThan(produced.length)

    await until(async () => (await admin.exists(`gw:s:{${requestId}}:end`)) === 1, 'the end to reach Redis')
    // Until its next beat, the other replica may still count Redis down (a documented 503); past it, the content.
    await until(async () => (await redisUp(b)) === '1', 'the other replica to see Redis up')
    expect(await admin.get(`gw:s:{${requestId}}:end`)).toMatch(new RegExp(`^last: ${produced.length}\n`))
    const late = await resume(b.url, requestId, 0, { headers: auth('key-a') })
    expect(codeOf(late)).toEqual(['stream_lost'])
    expect(chunkIds(late.events).length).toBeLessThan(produced.length)
  })

  test('a follower whose pub/sub connection is gone when the stream ends still ends: every chunk, then done', async () => {
    const turn = watched((onEvent) =>
      postChat(a.url, { message: 'deaf follower [[sim:tokens=20, delay=40]]', history: [] }, { headers: auth('key-a'), onEvent })
    )
    await until(() => turn.chunks() >= 1, 'the stream to start')
    const requestId = turn.events[0]!.json.requestId as string
    const follower = watched((onEvent) => resume(b.url, requestId, 0, { headers: auth('key-a'), onEvent }))
    await until(() => follower.chunks() >= 2, 'the follower to be live')
    const subscriber = b.app.gateway.redis!.subscriber
    subscriber.disconnect() // and it stays away until the end: nothing published reaches this replica
    try {
      expect(codeOf(await turn.end('the stream to end'))).toEqual(['done'])
      const live = await follower.end('the follower to end although it missed the end message')
      expect(chunkIds(live.events)).toEqual(upTo(20))
      expect(codeOf(live)).toEqual(['done'])
    } finally {
      await subscriber.connect()
    }
  })

  test('a resume by another API key is answered exactly as an unknown stream, on the replica that made it and on another', async () => {
    const made = await postChat(a.url, { message: 'mine [[sim:tokens=3]]', history: [] }, { headers: auth('key-a') })
    const requestId = made.events[0]!.json.requestId as string
    for (const gw of [a, b]) {
      const theirs = await resume(gw.url, requestId, 0, { headers: auth('key-b') })
      const unknown = await resume(gw.url, 'no-such-stream-0001', 0, { headers: auth('key-b') })
      expect(theirs.status).toBe(404)
      expect(theirs.body).toEqual(unknown.body)
      expect(theirs.body.error.code).toBe('stream_not_found')
      expect([...theirs.headers.keys()].sort()).toEqual([...unknown.headers.keys()].sort())
      const own = await resume(gw.url, requestId, 0, { headers: auth('key-a') })
      expect(own.status).toBe(200)
      expect(chunkIds(own.events)).toEqual(upTo(3))
      expect(codeOf(own)).toEqual(['done'])
    }
  })
})

describe('one replica (memory)', () => {
  let gw: TestGateway
  let keyed: TestGateway
  beforeAll(async () => {
    ;[gw, keyed] = await Promise.all([
      startGateway({ RESUME_GRACE_MS: '5000', RESUME_MAX_BYTES: '16384' }),
      startGateway({ API_KEYS: 'key-a,key-b' })
    ])
  })
  afterAll(async () => {
    await Promise.all([gw?.close(), keyed?.close()])
  })

  test('a resume whose Last-Event-ID is ahead of what was produced gets only the events after it, live ones too', async () => {
    const turn = watched((onEvent) => postChat(gw.url, { message: 'ahead [[sim:tokens=30, delay=25]]', history: [] }, { onEvent }))
    await until(() => turn.chunks() >= 1, 'the stream to start')
    const requestId = turn.events[0]!.json.requestId as string
    const ahead = await resume(gw.url, requestId, 25)
    expect(chunkIds(ahead.events)).toEqual([26, 27, 28, 29, 30])
    expect(codeOf(ahead)).toEqual(['done'])
    await turn.result
  })

  test('a resume by another API key is answered exactly as an unknown stream', async () => {
    const made = await postChat(keyed.url, { message: 'mine [[sim:tokens=3]]', history: [] }, { headers: auth('key-a') })
    const requestId = made.events[0]!.json.requestId as string
    const theirs = await resume(keyed.url, requestId, 0, { headers: auth('key-b') })
    const unknown = await resume(keyed.url, 'no-such-stream-0001', 0, { headers: auth('key-b') })
    expect(theirs.status).toBe(404)
    expect(theirs.body).toEqual(unknown.body)
    expect([...theirs.headers.keys()].sort()).toEqual([...unknown.headers.keys()].sort())
    const own = await resume(keyed.url, requestId, 0, { headers: auth('key-a') })
    expect(chunkIds(own.events)).toEqual(upTo(3))
  })

  test('over RESUME_MAX_BYTES an ended stream is forgotten (204), and a live one bigger than the budget resumes with stream_lost, never short', async () => {
    const small = await postChat(gw.url, { message: 'small [[sim:tokens=5]]', history: [] })
    const smallId = small.events[0]!.json.requestId as string
    expect((await resume(gw.url, smallId, 0)).status).toBe(200)

    // About 200 bytes counted a chunk: 400 chunks are far over 16 KiB.
    const controller = new AbortController()
    const big = watched((onEvent) =>
      postChat(gw.url, { message: 'big [[sim:tokens=400, delay=5]]', history: [] }, { signal: controller.signal, onEvent })
    )
    await until(() => big.chunks() >= 150, 'the big stream to pass the budget')
    controller.abort() // RESUME_GRACE_MS keeps it generating for a resume
    await big.result
    const bigId = big.events[0]!.json.requestId as string
    expect((await resume(gw.url, smallId, 0)).status).toBe(204)
    const lost = await resume(gw.url, bigId, 0)
    expect(codeOf(lost)).toEqual(['stream_lost'])
    expect(chunkIds(lost.events)).toEqual([])
  })
})
