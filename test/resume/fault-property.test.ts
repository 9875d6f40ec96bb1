// A property over Redis faults at random moments of a stream produced on one replica and followed on
// another: Redis hung (SIGSTOP), killed and restarted empty later, restarted empty at once, or every
// pub/sub connection dropped (CLIENT KILL TYPE pubsub). Whatever the fault and its moment, every
// follower and every late resume ends whole (every chunk after its Last-Event-ID, then done) or with
// stream_lost, or is refused as documented (404, 204, 503); never short with done, never hanging.
// When only pub/sub was lost, Redis holds every event, so every one ends whole.
import fc from 'fast-check'
import type { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { postChat, resume, terminal, type ChatResult, type SseEvent } from '../helpers/sse.js'
import { until, type TestGateway } from '../helpers/gateway.js'
import { replicasOnRedis, type ReplicasOnRedis, type TestRedis } from '../helpers/redis.js'
import { lacks } from '../helpers/system.js'
import { redisUp, watched } from '../helpers/watched.js'

/** Chunks per stream: with 20 ms between them, a fault lands mid-stream or as it ends. */
const N = 24
const PROMPT = `faulted [[sim:tokens=${N}, delay=20]]`
const FAULTS = ['hang', 'kill', 'restart', 'pubsub'] as const
type Fault = (typeof FAULTS)[number]

const chunks = (events: SseEvent[]) => events.filter((e) => e.event === 'chunk')
/**
 * What a resume from `from` may be: a documented refusal, or chunks from+1… in order with the text the
 * producer sent, then one terminal event: done only with every chunk, else stream_lost. Returns its kind.
 */
function judge(r: ChatResult, from: number, reference: Map<number, string>, what: string): string {
  if (r.status !== 200) {
    const refusals: Record<number, string | undefined> = { 404: 'stream_not_found', 503: 'store_unavailable', 204: undefined }
    expect(Object.keys(refusals), `${what}: status ${r.status}`).toContain(String(r.status))
    expect(r.body?.error?.code, what).toBe(refusals[r.status])
    return String(r.status)
  }
  const ends = terminal(r)
  expect(ends, `${what}: one terminal event`).toHaveLength(1)
  expect(r.events.at(-1), `${what}: the terminal event last`).toBe(ends[0])
  const ids = chunks(r.events).map((e) => Number(e.id))
  expect(ids, `${what}: chunks in order from Last-Event-ID ${from}`).toEqual(ids.map((_, i) => from + 1 + i))
  for (const e of chunks(r.events)) expect(e.json.text, `${what}: chunk ${e.id}`).toBe(reference.get(Number(e.id)))
  if (ends[0]!.event === 'done') {
    expect(ids.length, `${what}: done only when whole`).toBe(Math.max(0, N - from))
    return 'whole'
  }
  expect(ends[0]!.json.code, what).toBe('stream_lost')
  return 'lost'
}

describe.skipIf(lacks('the resume fault property', 'redis-server'))('resume under Redis faults at random moments', () => {
  let redis: TestRedis
  let admin: Redis
  let a: TestGateway
  let b: TestGateway
  let replicas: ReplicasOnRedis
  beforeAll(async () => {
    replicas = await replicasOnRedis({ REDIS_COMMAND_TIMEOUT_MS: '300' })
    ;({ redis, admin, a, b } = replicas)
  })
  afterAll(async () => {
    await replicas?.close()
  })

  async function fault(kind: Fault, heal: () => Promise<void>): Promise<void> {
    switch (kind) {
      case 'hang':
        redis.pause()
        try {
          await heal()
        } finally {
          redis.resume()
        }
        return
      case 'kill':
        await redis.kill()
        try {
          await heal()
        } finally {
          await redis.restart()
        }
        return
      case 'restart':
        await redis.restart()
        return
      case 'pubsub':
        await admin.client('KILL', 'TYPE', 'pubsub')
    }
  }

  test('every follower and late resume ends whole or with stream_lost, or is refused as documented; never short, never hanging', async () => {
    const seen: Record<string, number> = {}
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          kind: fc.constantFrom(...FAULTS),
          at: fc.integer({ min: 1, max: N - 1 }),
          lasting: fc.integer({ min: 0, max: N }),
          // Hung or killed until the producer has seen it: its writes of that time are skipped, not just late.
          hold: fc.boolean(),
          followFrom: fc.integer({ min: 0, max: N }),
          lateFrom: fc.integer({ min: 0, max: N })
        }),
        async ({ kind, at, lasting, hold, followFrom, lateFrom }) => {
          await until(async () => (await redisUp(a)) === '1' && (await redisUp(b)) === '1', 'both replicas to see Redis up')
          const turn = watched((onEvent) => postChat(a.url, { message: PROMPT, history: [] }, { onEvent }))
          await until(() => turn.chunks() >= 1, 'the stream to start')
          const requestId = turn.events[0]!.json.requestId as string
          const follower = watched((onEvent) => resume(b.url, requestId, followFrom, { onEvent }))
          await until(async () => follower.ended() || (await admin.get(`gw:s:{${requestId}}:followers`)) === '1', 'the follower to attach')

          await until(() => turn.chunks() >= at || turn.ended(), `chunk ${at}`)
          await fault(kind, async () => {
            await until(() => turn.chunks() >= at + lasting || turn.ended(), `${lasting} chunks during the fault`)
            if (hold) await until(async () => (await redisUp(a)) === '0', 'the producer to see Redis down')
          })

          const produced = await turn.end('the stream to end')
          expect(terminal(produced).map((e) => e.event)).toEqual(['done'])
          const reference = new Map(chunks(produced.events).map((e) => [Number(e.id), e.json.text as string]))
          expect(reference.size).toBe(N)

          const live = judge(await follower.end('the follower to end'), followFrom, reference, `${kind}: follower`)
          await until(async () => (await redisUp(a)) === '1' && (await redisUp(b)) === '1', 'both replicas to see Redis up')
          const late = judge(await resume(b.url, requestId, lateFrom), lateFrom, reference, `${kind}: late resume`)
          // The producer's replica holds it all, whatever Redis did.
          expect(judge(await resume(a.url, requestId, lateFrom), lateFrom, reference, `${kind}: own replica`)).toBe('whole')
          if (kind === 'pubsub') {
            expect(live, 'pub/sub lost, the list holds all: follower').toBe('whole')
            expect(late, 'pub/sub lost, the list holds all: late resume').toBe('whole')
          }
          for (const outcome of [`${kind} follower ${live}`, `${kind} late ${late}`]) seen[outcome] = (seen[outcome] ?? 0) + 1
        }
      ),
      { numRuns: Number(process.env.FAULT_RUNS ?? 12) }
    )
    console.log('outcomes:', seen)
  })
})
