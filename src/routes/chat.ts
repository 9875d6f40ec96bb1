// POST /api/chat: validate, admit, take the session's turn lock, then hand the turn to the
// dispatcher and let the SSE writer carry it to the client.
import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config } from '../config.js'
import { errorCodes, GatewayError, wireError } from '../errors.js'
import type { DoneMessage, Turn, UpstreamRequest, WireError } from '../protocol.js'
import type { Dispatcher } from '../chat/dispatch.js'
import { SseWriter, type Heartbeats } from '../chat/sse-writer.js'
import type { Lifecycle } from '../lifecycle.js'
import type { SessionStore } from '../sessions/store.js'
import type { Metrics } from '../metrics.js'
import { chatBodySchema, ErrorBodySchema, type ChatBody } from './chat-schema.js'

export interface ChatRouteOptions {
  config: Config
  dispatcher: Dispatcher
  sessions: SessionStore
  heartbeats: Heartbeats
  lifecycle: Lifecycle
  metrics: Metrics
}

const errorResponses = Object.fromEntries(
  [...new Set(Object.values(errorCodes).map((e) => e.status))].filter((s) => s < 500 || s === 503).map((s) => [s, ErrorBodySchema])
)

/** Marks a request whose log line the stream writes itself when it ends. */
export const STREAMED = 'streamed'

export const chatRoutes: FastifyPluginAsync<ChatRouteOptions> = async (fastify, opts) => {
  const { config, dispatcher, sessions, heartbeats, lifecycle, metrics } = opts
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.post('/api/chat', {
    schema: {
      summary: 'Send a chat turn and receive the reply as Server-Sent Events',
      body: chatBodySchema(config),
      response: {
        200: { description: 'text/event-stream: meta, chunk*, then exactly one done or error', content: { 'text/event-stream': { schema: { type: 'string' } } } },
        ...errorResponses
      }
    }
  }, async (request, reply) => {
    const body = request.body
    if (body.history && body.sessionId) throw new GatewayError('bad_request', 'Send either sessionId or history, not both.')
    lifecycle.admit()
    if (dispatcher.full) throw new GatewayError('overloaded', undefined, 1)
    const model = body.model ?? config.DEFAULT_MODEL
    const { sessionId, turns } = await openSession(sessions, body)

    const requestId = request.id
    const request_: UpstreamRequest = { model, turns: [...turns, { role: 'user', text: body.message }], ...(body.system ? { system: body.system } : {}), ...(body.generation ? { generation: body.generation } : {}) }
    let retries = 0
    let outcome: { code: string; usage?: DoneMessage['usage'] } | undefined

    const finish = (code: string, usage?: DoneMessage['usage']) => {
      outcome = { code, ...(usage ? { usage } : {}) }
      lifecycle.untrack(open)
      metrics.streamEnded(code, writer.timing, usage)
      const timing = writer.timing
      request.log.info({
        requestId, sessionId, model, outcome: code, retries, threads: handle.threads, ttftMs: timing.ttftMs, durationMs: timing.totalMs,
        promptTokens: usage?.promptTokens, outputTokens: usage?.outputTokens,
        ...(config.LOG_CONTENT ? { message: body.message } : {})
      }, 'chat turn')
    }

    const writer = new SseWriter(reply.raw, heartbeats, config.STREAM_BUFFER_BYTES, () => {
      handle.cancel()
      release()
      finish('client_too_slow')
      // It stopped reading: the terminal event may never drain, so do not hold the socket for it.
      setTimeout(() => reply.raw.destroy(), 5_000).unref()
    })
    const release = () => { if (sessionId) void sessions.release(sessionId) }

    reply.hijack()
    request.outcome = STREAMED
    writer.open({ requestId, sessionId, model }, { ...reply.getHeaders(), 'x-request-id': requestId })
    metrics.streamStarted()

    const handle = dispatcher.start(requestId, request_, sessionId !== null, {
      chunks: (frames) => writer.chunks(frames),
      retry: (code) => { retries++; metrics.retried(code) },
      done: (message) => {
        if (sessionId) void sessions.commit(sessionId, body.message, message.text ?? '')
        writer.done(message)
        finish('done', message.usage)
      },
      error: (error: WireError) => {
        release()
        writer.error(error)
        finish(error.code)
      }
    })

    const open = {
      shutdown: () => {
        if (outcome) return
        handle.cancel()
        release()
        writer.error(wireError('shutting_down'))
        finish('shutting_down')
      }
    }
    lifecycle.track(open)

    reply.raw.on('close', () => {
      if (outcome) return
      // The client left before the terminal event: stop the upstream call, keep nothing.
      writer.abandon()
      handle.cancel()
      release()
      finish('client_closed')
    })
  })
}

async function openSession(sessions: SessionStore, body: ChatBody): Promise<{ sessionId: string | null; turns: Turn[] }> {
  if (body.history) return { sessionId: null, turns: body.history }
  if (body.sessionId) return { sessionId: body.sessionId, turns: await sessions.begin(body.sessionId) }
  return { sessionId: await sessions.create(), turns: [] }
}
