// GET /api/chat/streams/:requestId: a client that lost its connection sends the id of the last
// event it saw (Last-Event-ID) and gets the events it missed, then the rest live, then the end.
import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { GatewayError, wireError } from '../errors.js'
import { errorFrame } from '../chat/sse-frames.js'
import { SseWriter, type Heartbeats } from '../chat/sse-writer.js'
import type { StreamLog } from '../resume/stream-log.js'
import type { Config } from '../config.js'
import { STREAMED, errorResponses } from './chat.js'

export interface ResumeOptions {
  config: Config
  streamLog: StreamLog
  heartbeats: Heartbeats
}

export const resumeRoutes: FastifyPluginAsync<ResumeOptions> = async (fastify, { config, streamLog, heartbeats }) => {
  fastify.withTypeProvider<TypeBoxTypeProvider>().get(
    '/api/chat/streams/:requestId',
    {
      schema: {
        summary: 'Resume a stream: the events after Last-Event-ID, then the rest live',
        params: Type.Object({ requestId: Type.String({ pattern: '^[A-Za-z0-9_-]{8,128}$' }) }),
        headers: Type.Object({
          'last-event-id': Type.Optional(
            Type.String({ pattern: '^[0-9]{1,9}$', description: 'id of the last event received; 0 or absent: from the start' })
          )
        }),
        response: {
          200: {
            description: 'text/event-stream: the missed chunk events, then the rest, then exactly one done or error',
            content: { 'text/event-stream': { schema: { type: 'string' } } }
          },
          204: { description: 'the stream ended long ago; nothing to replay (an EventSource stops here)', type: 'null' },
          ...errorResponses
        }
      }
    },
    async (request, reply) => {
      const afterId = Number(request.headers['last-event-id'] ?? 0)
      let detach = () => {}
      const writer = new SseWriter(reply.raw, heartbeats, config.STREAM_BUFFER_BYTES, () => {
        detach()
        writer.finish(errorFrame(wireError('client_too_slow')))
      })
      let opened = false
      const open = () => {
        if (opened) return
        opened = true
        reply.hijack()
        request.outcome = STREAMED
        writer.open(null, { ...reply.getHeaders(), 'x-request-id': request.params.requestId })
      }
      const result = await streamLog.attach(request.params.requestId, afterId, {
        frames: (frames) => {
          open()
          writer.chunks(frames)
        },
        end: (terminal) => {
          open()
          writer.finish(terminal)
        }
      })
      if (result.kind === 'unknown') throw new GatewayError('stream_not_found')
      if (result.kind === 'gone') return reply.status(204).send()
      detach = () => result.attachment.detach()
      open()
      reply.raw.on('close', detach)
    }
  )
}
