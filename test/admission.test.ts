// Admission and backpressure: the gateway refuses early and never buffers without bound.
import { once } from 'node:events'
import { createServer } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { afterEach, expect, test } from 'vitest'
import { postChat, terminal } from './helpers/sse.js'
import { startGateway, until, type TestGateway } from './helpers/gateway.js'

let gw: TestGateway | undefined
afterEach(async () => {
  await gw?.close()
  gw = undefined
})

test('past POOL_MAX_QUEUE a turn is refused with 503 overloaded and Retry-After, before any upstream call', async () => {
  gw = await startGateway({ POOL_MIN_THREADS: '1', POOL_MAX_THREADS: '1', POOL_TASKS_PER_WORKER: '1', POOL_MAX_QUEUE: '1' })
  const g = gw
  let running!: () => void
  const first = new Promise<void>((resolve) => {
    running = resolve
  })
  const slow = { message: 'hold the slot [[sim:tokens=5, delay=100]]', history: [] }
  const a = postChat(g.url, slow, {
    onEvent: (e) => {
      if (e.event === 'chunk') running()
    }
  })
  await first
  const b = postChat(g.url, slow) // queued behind a
  await until(() => g.app.gateway.runner.inflight === 2, 'the second turn to queue')
  const requests = g.sim.stats().requests
  const refused = await postChat(g.url, slow)
  expect(refused.status).toBe(503)
  expect(refused.headers.get('retry-after')).toBe('1')
  expect(refused.body.error.code).toBe('overloaded')
  expect(g.sim.stats().requests).toBe(requests)
  // The admitted ones are unaffected.
  for (const r of await Promise.all([a, b])) expect(terminal(r)[0]!.event).toBe('done')
  const metrics = await (await fetch(`${g.url}/metrics`)).text()
  expect(metrics).toMatch(/gateway_admission_refused_total\{code="overloaded"\} 1/)
})

test('a reader that stops reading is cut off with client_too_slow and its upstream call is cancelled', async () => {
  // An upstream that streams 64 KB chunks until it is hung up on: a reply larger than any socket buffer.
  let upstreamClosed!: () => void
  const closed = new Promise<void>((resolve) => {
    upstreamClosed = resolve
  })
  const text = 'x'.repeat(64 * 1024)
  const firehose = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    const chunk = `data: ${JSON.stringify({ candidates: [{ content: { parts: [{ text }], role: 'model' }, index: 0 }] })}\r\n\r\n`
    const timer = setInterval(() => res.write(chunk), 5)
    res.on('close', () => {
      clearInterval(timer)
      upstreamClosed()
    })
  })
  await new Promise<void>((resolve) => firehose.listen(0, '127.0.0.1', resolve))
  gw = await startGateway({
    STREAM_BUFFER_BYTES: '262144',
    GEMINI_BASE_URL: `http://127.0.0.1:${(firehose.address() as AddressInfo).port}`
  })
  const g = gw
  try {
    const socket = connect(Number(new URL(g.url).port), '127.0.0.1')
    await once(socket, 'connect')
    const body = JSON.stringify({ message: 'a very long answer, please' })
    socket.write(`POST /api/chat HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
    // Read the first bytes (the stream has started), then stop reading.
    await once(socket, 'data')
    socket.pause()
    await closed
    const metrics = await (await fetch(`${g.url}/metrics`)).text()
    expect(metrics).toMatch(/gateway_streams_total\{outcome="client_too_slow"\} 1/)
    expect(g.app.gateway.lifecycle.streams.size).toBe(0)
    socket.destroy()
  } finally {
    firehose.closeAllConnections()
    firehose.close()
  }
})
