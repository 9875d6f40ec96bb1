// The resume route's own promise, whatever its log does: a response that began with replayed events
// ends with one terminal event, even when the log fails after the replay (a store that stopped
// answering between two reads); one that did not begin is refused in the registry's shape.
import Fastify from 'fastify'
import { afterEach, expect, test } from 'vitest'
import { loadConfig } from '../../src/config.js'
import { installErrorHandler } from '../../src/error-handler.js'
import { GatewayError } from '../../src/errors.js'
import { Heartbeats } from '../../src/chat/sse-writer.js'
import { Lifecycle } from '../../src/lifecycle.js'
import { resumeRoutes } from '../../src/routes/resume.js'
import type { ResumeSink, StreamLog } from '../../src/resume/stream-log.js'
import { gatewayFramer } from '../../src/wire/gateway-events.js'
import { readSse, terminal } from '../helpers/sse.js'

const heartbeats = new Heartbeats(60_000)
let close: (() => Promise<void>) | undefined
afterEach(async () => {
  await close?.()
})

/** A log whose attach replays `replayed` frames, then fails with `err`. */
function failingLog(replayed: number, err: Error): StreamLog {
  return {
    open() {},
    append() {},
    end: async () => {},
    async attach(_id: string, _after: number, sink: ResumeSink) {
      for (let id = 1; id <= replayed; id++) sink.frames(gatewayFramer.chunk(id, `t${id}`))
      throw err
    },
    followed: async () => false,
    close: async () => {}
  }
}

async function serve(streamLog: StreamLog): Promise<string> {
  const app = Fastify()
  installErrorHandler(app, () => {})
  const lifecycle = new Lifecycle()
  await app.register(resumeRoutes, { config: loadConfig({}), streamLog, heartbeats, lifecycle })
  await app.listen({ port: 0, host: '127.0.0.1' })
  close = () => app.close()
  const address = app.server.address()
  if (!address || typeof address === 'string') throw new Error('no port')
  return `http://127.0.0.1:${address.port}`
}

test.each([
  ['after replayed events: the events, then one stream_lost event', 3, 200],
  ['before any event: the store refusal itself', 0, 503]
])('an attach that fails %s', async (_name, replayed, status) => {
  const url = await serve(failingLog(replayed, new GatewayError('store_unavailable')))
  const r = await readSse(await fetch(`${url}/api/chat/streams/abcdefgh1234`))
  expect(r.status).toBe(status)
  if (status === 200) {
    expect(r.events.filter((e) => e.event === 'chunk').map((e) => e.id)).toEqual(['1', '2', '3'])
    expect(terminal(r).map((e) => [e.event, e.json.code])).toEqual([['error', 'stream_lost']])
  } else expect(r.body.error.code).toBe('store_unavailable')
})
