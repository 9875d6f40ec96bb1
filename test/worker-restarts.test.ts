// gateway_worker_restarts_total counts worker threads that died, once each, however many turns each
// one failed; a turn that never reached a worker is no restart and no worker fault (internal_error).
import { MessageChannel } from 'node:worker_threads'
import { afterEach, describe, expect, test } from 'vitest'
import { Dispatcher, type StreamEvents } from '../src/chat/dispatch.js'
import { loadConfig } from '../src/config.js'
import type { WireError } from '../src/protocol.js'
import { createRunner } from '../src/pool/runner.js'
import { startGateway, until, type TestGateway } from './helpers/gateway.js'
import { postChat, terminal, type ChatResult } from './helpers/sse.js'

// Far above any pause a loaded machine gives a healthy worker's heartbeat, so only a spin trips it.
const STALL_MS = 2_000
/** Turns sharing the faulty turn's worker. */
const OTHERS = 5

let gw: TestGateway | undefined
afterEach(async () => {
  await gw?.close()
  gw = undefined
})

/** One worker thread serving up to 8 turns at once: every turn of the test shares it. */
const dense = () =>
  startGateway(
    {
      CHAOS: '1',
      POOL_MIN_THREADS: '1',
      POOL_MAX_THREADS: '1',
      POOL_TASKS_PER_WORKER: '8',
      WORKER_STALL_MS: String(STALL_MS),
      WORKER_MAX_HEAP_MB: '48',
      UPSTREAM_RETRIES: '0'
    },
    {},
    { logs: true }
  )

async function restarts(g: TestGateway): Promise<Record<string, number>> {
  const text = await (await fetch(`${g.url}/metrics`)).text()
  const counted: Record<string, number> = {}
  for (const [, cause, n] of text.matchAll(/^gateway_worker_restarts_total\{cause="([a-z_]+)"\} (\d+)$/gm)) counted[cause!] = Number(n)
  return counted
}

const endOf = (r: ChatResult) => {
  const end = terminal(r)
  expect(end).toHaveLength(1)
  return end[0]!.event === 'done' ? 'done' : (end[0]!.json.code as string)
}

describe('a fault that fails many turns of one worker counts that worker once', () => {
  test.each([
    ['throw', 'worker_crashed'],
    ['exit', 'worker_crashed'],
    ['oom', 'worker_out_of_memory'],
    ['spin', 'worker_stalled']
  ])('[[chaos:%s]] among streaming turns on its worker: restarts{cause="%s"} counts the two threads it killed', async (kind, cause) => {
    gw = await dense()
    const g = gw
    const started: Array<Promise<void>> = []
    const others = Array.from({ length: OTHERS }, (_, i) => {
      let first!: () => void
      started.push(new Promise<void>((resolve) => (first = resolve)))
      return postChat(g.url, { message: `stream ${i} [[sim:tokens=25, delay=40]]` }, { onEvent: (e) => e.event === 'chunk' && first() })
    })
    await Promise.all(started)
    const culprit = await postChat(g.url, { message: `[[chaos:${kind}]] please` })
    const ends = (await Promise.all(others)).map(endOf)
    // The culprit faulted its worker, then its quarantine worker: two threads died.
    expect(endOf(culprit)).toBe(cause)
    for (const end of ends) expect(['done', cause]).toContain(end)
    const faults = g.logs.filter((l) => l.msg === 'worker fault')
    expect(new Set(faults.map((l) => l.threadId)).size).toBe(2)
    expect(faults.length).toBeGreaterThanOrEqual(OTHERS + 2)
    expect(await restarts(g)).toEqual({ [cause]: 2 })
    await until(() => g.app.gateway.runner.size === 1, 'the pool to be replenished')
  })

  test('turns queued on a spinning worker never started there: each is its fault, none a restart of its own', async () => {
    gw = await dense()
    const g = gw
    const culprit = postChat(g.url, { message: '[[chaos:spin]] first' })
    // Handed to the one worker, which spins as soon as it reads it; what comes next waits behind it there.
    await until(() => g.app.gateway.runner.inflight === 1, 'the spinning turn to reach its worker')
    const queued = await Promise.all(Array.from({ length: OTHERS }, (_, i) => postChat(g.url, { message: `queued ${i}` })))
    expect(endOf(await culprit)).toBe('worker_stalled')
    // Their worker was terminated as stalled: theirs is that fault, or they were served on the retry.
    for (const r of queued) expect(['done', 'worker_stalled']).toContain(endOf(r))
    const terminated = g.logs.filter((l) => l.msg === 'worker stalled; terminated').length
    expect(terminated).toBeGreaterThanOrEqual(1)
    expect(await restarts(g)).toEqual({ worker_stalled: terminated })
    // Every queued turn's fault was its worker's: counted as a fault, attributed to that thread.
    const faults = g.logs.filter((l) => l.msg === 'worker fault')
    expect(faults.length).toBeGreaterThanOrEqual(OTHERS + 1)
    expect(faults.every((l) => l.cause === 'worker_stalled' && typeof l.threadId === 'number')).toBe(true)
    const metrics = await (await fetch(`${g.url}/metrics`)).text()
    expect(Number(/^gateway_worker_faults_total\{cause="worker_stalled"\} (\d+)$/m.exec(metrics)?.[1])).toBe(faults.length)
  })
})

test('a turn that cannot be handed to a worker ends with internal_error: no worker fault, no restart, no retry', async () => {
  const config = loadConfig({ POOL_MIN_THREADS: '1', POOL_MAX_THREADS: '1' })
  const runner = await createRunner(config, 'http://127.0.0.1:9')
  const died: number[] = []
  runner.on('workerDied', (threadId: number) => died.push(threadId))
  const faults: unknown[] = []
  const dispatcher = new Dispatcher(runner, undefined, 10, 10_000, (code, threadId) => faults.push({ code, threadId }))
  try {
    const ended = new Promise<WireError>((resolve, reject) => {
      const events: StreamEvents = {
        chunks: () => reject(new Error('a chunk')),
        answer: () => {},
        retry: (code) => reject(new Error(`retried after ${code}`)),
        reroute: async () => undefined,
        done: () => reject(new Error('done')),
        error: resolve
      }
      dispatcher.start(
        {
          requestId: 'r1',
          // A value structured clone refuses: the task cannot be posted to any worker.
          request: { model: 'gemini-2.5-flash', contents: [{ role: 'user', parts: [{ text: 'hi', notCloneable: () => 1 }] }] },
          wantContent: false,
          deployment: 'gemini-2.5-flash',
          alternatives: false
        },
        events
      )
    })
    expect(await ended).toMatchObject({ code: 'internal_error' })
    expect(faults).toEqual([])
    expect(died).toEqual([])
    // The worker is alive and serves the next task.
    expect(runner.size).toBe(1)
    const { port1, port2 } = new MessageChannel()
    const messages: unknown[] = []
    port1.on('message', (m) => messages.push(m))
    await runner.run({
      port: port2,
      requestId: 'r2',
      request: { model: 'gemini-2.5-flash', contents: [{ role: 'user', parts: [{ text: 'hi' }] }] },
      wantContent: false,
      firstTokenBy: Date.now() + 10_000,
      attempt: 1,
      deployment: 'gemini-2.5-flash',
      alternatives: false
    })
    expect(messages[0]).toMatchObject({ type: 'start' })
    port1.close()
  } finally {
    await runner.close()
  }
})
