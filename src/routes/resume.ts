// GET /api/chat/streams/:requestId: a client that lost its connection sends the id of the last
// event it saw (Last-Event-ID) and gets the events it missed, then the rest live, then the end.
// A follower is an open stream like a turn: a drain ends it with shutting_down (the stream itself
// may go on elsewhere; the client resumes there).
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { GatewayError } from '../errors.js'
import type { Lifecycle, OpenStream } from '../lifecycle.js'
import { SseWriter, type Heartbeats } from '../chat/sse-writer.js'
import { TURN_LOGGED } from '../chat/turn.js'
import { tenantOf, type Attachment, type ResumeSink, type StreamLog } from '../resume/stream-log.js'
import type { Config } from '../config.js'
import { wireError } from '../wire/error-event.js'
import { errorFrame } from '../wire/gateway-events.js'
import { errorResponses } from './chat-schema.js'

export interface ResumeOptions {
  config: Config
  streamLog: StreamLog
  heartbeats: Heartbeats
  lifecycle: Lifecycle
}

export const resumeRoutes: FastifyPluginAsync<ResumeOptions> = async (fastify, { config, streamLog, heartbeats, lifecycle }) => {
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
      lifecycle.admit()
      const follower: Follower = new Follower(reply, request.params.requestId, heartbeats, config.STREAM_BUFFER_BYTES, () => {
        lifecycle.untrack(follower)
      })
      lifecycle.track(follower)
      const result = await streamLog
        // A stream of another API key is answered as an unknown one.
        .attach(request.params.requestId, Number(request.headers['last-event-id'] ?? 0), follower, tenantOf(request.clientKey))
        .catch((err: unknown) => {
          // Once replayed events were written, the answer is this stream's: it ends with its one terminal event.
          if (follower.started) {
            follower.end(errorFrame(wireError('stream_lost', 'The stream could not be followed further; resume again.')))
            return undefined
          }
          follower.end()
          throw err
        })
      if (result === undefined) {
        request.outcome = TURN_LOGGED
        return
      }
      if (result.kind !== 'attached') {
        follower.end()
        if (result.kind === 'unknown') throw new GatewayError('stream_not_found')
        return reply.status(204).send()
      }
      follower.attached(result.attachment)
      request.outcome = TURN_LOGGED
    }
  )
}

/** One client following a stream: the replay, then live events, until its end, this side's, or the client leaving. */
class Follower implements ResumeSink, OpenStream {
  private readonly writer: SseWriter
  private opened = false
  /** Whether the response has begun (events were written), so that only an event can end it. */
  get started(): boolean {
    return this.opened
  }
  private ended = false
  private attachment: Attachment | undefined

  constructor(
    private readonly reply: FastifyReply,
    private readonly requestId: string,
    heartbeats: Heartbeats,
    bufferBytes: number,
    private readonly onEnd: () => void
  ) {
    this.writer = new SseWriter(reply.raw, heartbeats, bufferBytes, () => {
      this.end(errorFrame(wireError('client_too_slow')))
    })
  }

  frames(frames: string): void {
    this.open()
    this.writer.chunks(frames)
  }

  /** The stream's terminal event, this side's error event, or (none) the client left. */
  end = (terminal?: string): void => {
    if (this.ended) return
    this.ended = true
    this.attachment?.detach()
    this.onEnd()
    if (terminal === undefined) this.writer.abandon()
    else {
      this.open()
      this.writer.finish(terminal)
    }
  }

  /** A drain ends the follower; the stream itself may go on elsewhere, where the client resumes. */
  shutdown(): void {
    this.end(errorFrame(wireError('shutting_down')))
  }

  attached(attachment: Attachment): void {
    this.attachment = attachment
    if (this.ended) {
      attachment.detach()
      return
    }
    this.open()
    this.reply.raw.on('close', () => {
      this.end()
    })
  }

  private open(): void {
    if (this.opened) return
    this.opened = true
    this.reply.hijack()
    this.writer.open({ ...this.reply.getHeaders(), 'x-request-id': this.requestId })
  }
}
