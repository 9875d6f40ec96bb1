// One conversation's worker fault never touches conversations on other workers.
import { afterEach, describe, expect, test } from 'vitest'
import { postChat, replyText, terminal, type ChatResult } from './helpers/sse.js'
import { startGateway, until, type TestGateway } from './helpers/gateway.js'

// Far above any pause a loaded machine gives a healthy worker's heartbeat, so only a spin trips it.
const STALL_MS = 2_000
const FAULTS: Array<[string, string]> = [
  ['throw', 'worker_crashed'],
  ['exit', 'worker_crashed'],
  ['oom', 'worker_out_of_memory'],
  ['spin', 'worker_stalled']
]

let gw: TestGateway | undefined
afterEach(async () => {
  await gw?.close()
  gw = undefined
})

const prompt = (i: number) => `conversation ${i} [[sim:tokens=25, delay=40]]`

describe.each([1, 8])('POOL_TASKS_PER_WORKER=%i', (perWorker) => {
  // Strict isolation: a worker per stream. Density: two workers share everything.
  const threads = perWorker === 1 ? 4 : 2
  const normalCount = perWorker === 1 ? 3 : 6

  test.each(FAULTS)("[[chaos:%s]] ends its own stream with %s and leaves other workers' streams intact", async (kind, code) => {
    gw = await startGateway(
      {
        CHAOS: '1',
        POOL_MIN_THREADS: String(threads),
        POOL_MAX_THREADS: String(threads),
        POOL_TASKS_PER_WORKER: String(perWorker),
        WORKER_STALL_MS: String(STALL_MS),
        WORKER_MAX_HEAP_MB: '48',
        UPSTREAM_RETRIES: '0'
      },
      {},
      { logs: true }
    )
    const g = gw
    const prompts = Array.from({ length: normalCount }, (_, i) => prompt(i))
    // What each conversation says when nothing goes wrong.
    const reference = await Promise.all(prompts.map(async (message) => replyText(await postChat(g.url, { message, history: [] }))))

    const firstChunks: Array<Promise<void>> = []
    const normal = prompts.map((message) => {
      let started!: () => void
      firstChunks.push(
        new Promise<void>((resolve) => {
          started = resolve
        })
      )
      return postChat(
        g.url,
        { message, history: [] },
        {
          onEvent: (e) => {
            if (e.event === 'chunk') started()
          }
        }
      )
    })
    await Promise.all(firstChunks)
    const [culprit, ...others] = await Promise.all([postChat(g.url, { message: `[[chaos:${kind}]] please`, history: [] }), ...normal])

    // The faulted turn: retried once alone, faulted again, so it ends with exactly one error and no chunk.
    expect(terminal(culprit)).toHaveLength(1)
    expect(culprit.events.at(-1)!.json).toMatchObject({ code, retryable: true })
    expect(culprit.events.filter((e) => e.event === 'chunk')).toHaveLength(0)

    const faulted = new Set(g.logs.filter((l) => l.msg === 'worker fault').map((l) => l.threadId))
    expect(faulted.size).toBeGreaterThanOrEqual(1)
    const threadsOf = (r: ChatResult) =>
      g.logs.find((l) => l.msg === 'chat turn' && l.requestId === r.events[0]!.json.requestId).threads as number[]
    let untouched = 0
    others.forEach((r, i) => {
      expect(terminal(r)).toHaveLength(1)
      const end = r.events.at(-1)!
      if (threadsOf(r).some((t) => faulted.has(t))) {
        // It shared the failed worker: intact after a transparent retry, or one error event.
        if (end.event === 'error') expect(end.json.code).toBe(code)
        else expect(replyText(r)).toBe(reference[i])
      } else {
        untouched++
        expect(end.event).toBe('done')
        expect(replyText(r)).toBe(reference[i])
      }
    })
    expect(untouched).toBeGreaterThanOrEqual(perWorker === 1 ? normalCount : 1)

    // The pool is back to its size, ready, and serves a fresh turn.
    await until(() => g.app.gateway.runner.size === threads, 'the pool to be replenished')
    expect((await fetch(`${g.url}/readyz`)).status).toBe(200)
    const fresh = await postChat(g.url, { message: prompt(0), history: [] })
    expect(replyText(fresh)).toBe(reference[0])
  })
})

test('without CHAOS=1 the directives are plain text', async () => {
  gw = await startGateway({ WORKER_STALL_MS: String(STALL_MS) })
  const r = await postChat(gw.url, { message: '[[chaos:exit]] [[chaos:spin]]' })
  expect(r.events.at(-1)!.event).toBe('done')
})

describe('a worker fault before the first chunk', () => {
  const env = { CHAOS: '1', WORKER_STALL_MS: String(STALL_MS), UPSTREAM_RETRIES: '0' }

  test('[[chaos:spin-once]]: the turn is retried once in quarantine and served whole', async () => {
    gw = await startGateway(env, {}, { logs: true })
    const message = '[[chaos:spin-once]] served [[sim:tokens=9]]'
    const r = await postChat(gw.url, { message, history: [] })
    expect(terminal(r).map((e) => e.event)).toEqual(['done'])
    // Without CHAOS=1 the directive is plain text: the same prompt, unfaulted, is the reference.
    const plain = await startGateway({ WORKER_STALL_MS: String(STALL_MS) })
    try {
      expect(replyText(r)).toBe(replyText(await postChat(plain.url, { message, history: [] })))
    } finally {
      await plain.close()
    }
    const turn = gw.logs.find((l) => l.msg === 'chat turn' && l.requestId === r.events[0]!.json.requestId)
    expect(turn).toMatchObject({ retries: 1, outcome: 'done' })
    expect(turn.threads).toHaveLength(2)
  })

  test('the first-token deadline spans the retry: STREAM_TTFT_TIMEOUT_MS counts from the turn, not the attempt', async () => {
    // The stall is detected after STALL_MS; the retry's first token comes 1.5 s after that, so past
    // a 3 s deadline counted from the turn's start but well within one counted from the retry.
    gw = await startGateway({ ...env, STREAM_TTFT_TIMEOUT_MS: String(STALL_MS + 1_000) })
    const r = await postChat(gw.url, { message: '[[chaos:spin-once]] slow [[sim:ttft=1500]]', history: [] })
    expect(terminal(r).map((e) => e.json.code)).toEqual(['upstream_timeout'])
    expect(replyText(r)).toBe('')
  })
})
