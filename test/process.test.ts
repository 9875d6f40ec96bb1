// The process as operators run it: start-up, graceful drain on SIGTERM/SIGINT, config errors, secrets.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { afterEach, describe, expect, test } from 'vitest'
import { postChat, resume, terminal, type ChatResult } from './helpers/sse.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { lacks } from './helpers/system.js'
import { SERVER_JS, SIMULATOR_JS, startChild, type ChildGateway } from './helpers/child.js'
import { until } from './helpers/gateway.js'

let gw: ChildGateway | undefined
afterEach(() => {
  gw?.child.kill('SIGKILL')
  gw = undefined
})

test('with no GEMINI_API_KEY the first log line says the built-in simulator serves chat', async () => {
  gw = await startChild({})
  expect(JSON.parse(gw.lines[0]!).msg).toMatch(
    /no GEMINI_API_KEY: serving chat from the built-in Gemini simulator at http:\/\/127\.0\.0\.1:\d+/
  )
})

describe.each(['SIGTERM', 'SIGINT'] as const)('%s drains', (signal) => {
  test('readiness turns 503, new turns are refused, short streams finish, long ones end with shutting_down, exit 0', async () => {
    // Short streams need 0.4 s of the 3 s grace, long ones 10 s: a loaded machine cannot blur the two.
    gw = await startChild({ SHUTDOWN_GRACE_MS: '3000', SIM_TTFT_MS: '0', SIM_DELAY_MS: '0' })
    const g = gw
    let started = 0
    const all = Array.from({ length: 6 }, (_, i) => {
      const long = i % 2 === 0
      const message = long ? `long ${i} [[sim:tokens=200, delay=50]]` : `short ${i} [[sim:tokens=10, delay=40]]`
      return postChat(
        g.url,
        { message },
        {
          onEvent: (e) => {
            if (e.event === 'chunk' && e.id === '1') started++
          }
        }
      )
    })
    await until(() => started === 6, 'every stream to start')
    g.child.kill(signal)
    await until(async () => (await fetch(`${g.url}/readyz`)).status === 503, '/readyz to turn 503')
    const refused = await postChat(g.url, { message: 'too late' })
    expect(refused.status).toBe(503)
    expect(refused.body.error.code).toBe('shutting_down')
    expect(refused.headers.get('retry-after')).toBeTruthy()

    const results: ChatResult[] = await Promise.all(all)
    results.forEach((r, i) => {
      expect(terminal(r)).toHaveLength(1)
      const end = r.events.at(-1)!
      if (i % 2 === 0) expect(end.json).toMatchObject({ code: 'shutting_down', retryable: true })
      else expect(end.event).toBe('done')
    })
    expect(await g.exited).toBe(0)
    const drained = g.lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'draining')
    // The long streams were certainly open; a short one may have ended before the signal was handled.
    expect(drained).toMatchObject({ signal })
    expect(drained.openStreams).toBeGreaterThanOrEqual(3)
    expect(drained.openStreams).toBeLessThanOrEqual(6)
  })
})

describe.skipIf(lacks('the drain-with-followers test', 'redis-server'))('a drain with every kind of open turn', () => {
  let redis: TestRedis | undefined
  let producer: ChildGateway | undefined
  afterEach(async () => {
    producer?.child.kill('SIGKILL')
    producer = undefined
    await redis?.stop()
  })

  test('a streamed turn, a non-streaming /v1 turn and a resume follower each get shutting_down, never a cut 200; exit 0', async () => {
    redis = await startRedis()
    const long = '[[sim:tokens=400, delay=50]]' // 20 s: only the drain can end these within its 500 ms grace
    const sim = { SIM_TTFT_MS: '0', SIM_DELAY_MS: '0', REDIS_URL: redis.url }
    // The follower on the draining replica follows a stream that another replica produces.
    producer = await startChild(sim)
    gw = await startChild({ ...sim, SHUTDOWN_GRACE_MS: '500' })
    const g = gw
    const seen = { streamed: 0, followed: 0 }
    let followedId = 0

    const produced = postChat(producer.url, { message: `elsewhere ${long}` })
    const { requestId } = await new Promise<{ requestId: string }>((resolve) => {
      void postChat(producer!.url, { message: `followed ${long}` }, { onEvent: (e) => e.event === 'meta' && resolve(e.json) })
    })
    const follower = resume(g.url, requestId, 0, {
      onEvent: (e) => {
        if (e.event === 'chunk') {
          seen.followed++
          followedId = Number(e.id)
        }
      }
    })
    const streamed = postChat(g.url, { message: `here ${long}` }, { onEvent: (e) => e.event === 'chunk' && seen.streamed++ })
    const unstreamed = fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: `whole ${long}` }] })
    }).then(async (res) => ({ status: res.status, body: await res.text() }))
    const active = async () => /^gateway_active_streams 2$/m.test(await (await fetch(`${g.url}/metrics`)).text())
    await until(async () => seen.streamed > 0 && seen.followed > 0 && (await active()), 'all three turns to be under way')

    g.child.kill('SIGTERM')
    const [s, f, u] = await Promise.all([streamed, follower, unstreamed])
    expect(await g.exited).toBe(0)
    for (const r of [s, f]) {
      expect(terminal(r)).toHaveLength(1)
      expect(r.events.at(-1)!.json).toMatchObject({ code: 'shutting_down', retryable: true })
    }
    expect(u.status).toBe(503)
    expect(JSON.parse(u.body)).toMatchObject({ error: { code: 'shutting_down', type: 'server_error' } })

    // The followed stream never stopped: resumed on its producer, nothing is lost.
    const rest = await resume(producer.url, requestId, followedId)
    expect(terminal(rest).map((e) => e.event)).toEqual(['done'])
    expect(seen.followed + rest.events.filter((e) => e.event === 'chunk').length).toBe(400)
    expect(terminal(await produced).map((e) => e.event)).toEqual(['done'])
  })
})

// The gateway and the standalone simulator (`npm run simulator`) validate their variables the same way.
test.each([
  [
    SERVER_JS,
    { POOL_MAX_THREADS: 'lots' },
    'invalid configuration: POOL_MAX_THREADS="lots" is not allowed (must be integer); expected >= 1, <= 256, an integer'
  ],
  [
    SIMULATOR_JS,
    { SIM_TOKENS: '0' },
    'invalid configuration: SIM_TOKENS="0" is not allowed (must be >= 1); expected >= 1, <= 100000, an integer'
  ]
])('a bad configuration value stops start-up with one line naming it: %s', async (script, env, line) => {
  const child = spawn(process.execPath, [script], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d
  })
  const [code] = await once(child, 'exit')
  expect(code).toBe(1)
  expect(stderr.trim().split('\n')).toEqual([line])
})

test('the Gemini key never reaches a log line or a response', async () => {
  const key = 'AIzaSy-secret-key-that-must-not-leak-123'
  // A "real" upstream: the simulator reached through GEMINI_BASE_URL, with a key to send it.
  const sim = await startChild({ SIM_TTFT_MS: '0', SIM_DELAY_MS: '0', LOG_LEVEL: 'trace' })
  const simBase = JSON.parse(sim.lines[0]!).simulator as string
  gw = await startChild({ GEMINI_API_KEY: key, GEMINI_BASE_URL: simBase, LOG_LEVEL: 'trace' })
  try {
    const ok = await postChat(gw.url, { message: 'hello' }, { headers: { authorization: `Bearer ${key}`, 'x-goog-api-key': key } })
    const failed = await postChat(gw.url, { message: 'fail [[sim:status=403]]' })
    const bad = await postChat(gw.url, { message: 7 })
    for (const r of [ok, failed, bad]) expect(r.raw).not.toContain(key)
    expect(terminal(ok)[0]!.event).toBe('done')
    gw.child.kill('SIGTERM')
    await gw.exited
    const output = [...gw.lines, ...gw.stderr].join('\n')
    expect(output).toContain('chat turn')
    expect(output).not.toContain(key)
    expect(output).not.toContain('hello') // message text is not logged without LOG_CONTENT=1
  } finally {
    sim.child.kill('SIGKILL')
  }
})
