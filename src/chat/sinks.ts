// Where a turn's reply goes, one sink per dialect. Every turn goes through the same machinery
// (chat/turn.ts); only this differs:
//
//   gateway SSE   meta · chunk/thought/tool_call (framed by the worker) · done | error
//   OpenAI SSE    chat.completion.chunk deltas (framed by the worker) · finish chunk, usage?, [DONE] | error
//   OpenAI JSON   nothing until the end · one chat.completion, or the error with its registry status
import type { FastifyReply } from 'fastify'
import { errorCodes, RETRY_AFTER_S } from '../errors.js'
import type { DoneMessage, OpenAiFraming, WireError } from '../protocol.js'
import type { Meta, Terminals, Timing } from '../wire/framing.js'
import { gatewayTerminals } from '../wire/gateway-events.js'
import { openAiCompletion, openAiError, openAiTerminals } from '../wire/openai-events.js'
import { SseWriter, type Heartbeats } from './sse-writer.js'

export type TurnDialect =
  | { name: 'gateway' }
  | { name: 'openai-sse'; framing: OpenAiFraming; includeUsage: boolean }
  | { name: 'openai-json'; framing: OpenAiFraming }

export interface TurnSink {
  /**
   * Whether a client that left can come back (GET /api/chat/streams/:requestId): the turn's events
   * go to the resume log and it runs on for RESUME_GRACE_MS. A JSON body cannot be resumed.
   */
  readonly resumable: boolean
  readonly timing: Timing
  /** Framed events from the worker. */
  chunks(frames: string): void
  /** The frames just relayed held the first answer chunk. */
  answered(): void
  /** Ends the response (a resumable one once the resume log holds its terminal event). */
  done(message: DoneMessage): void
  error(error: WireError): void
  /** The client left: nothing more is written. */
  abandon(): void
}

/** Time to the first answer chunk (never to a thought: `answered` times it then) and in all. */
class Clock {
  private readonly startedAt = performance.now()
  private firstChunkAt: number | undefined
  constructor(private readonly thoughtsFirst: boolean) {}
  chunks(): void {
    if (!this.thoughtsFirst) this.firstChunkAt ??= performance.now()
  }
  answered(): void {
    this.firstChunkAt ??= performance.now()
  }
  get timing(): Timing {
    return {
      ttftMs: this.firstChunkAt === undefined ? null : Math.round(this.firstChunkAt - this.startedAt),
      totalMs: Math.round(performance.now() - this.startedAt)
    }
  }
}

export interface SinkOptions {
  heartbeats: Heartbeats
  bufferBytes: number
  /** Asked for when the first event is written. */
  meta: () => Meta
  /**
   * Gives the resume log a resumable stream's terminal event; the client gets it when this settles,
   * so that a client that saw the end and resumes on another replica finds all of it there.
   */
  keep: (terminal: string) => Promise<void>
  thoughtsFirst: boolean
  /** The reader fell more than bufferBytes behind: the turn ends it with client_too_slow. */
  onTooSlow: () => void
}

export function openSink(reply: FastifyReply, dialect: TurnDialect, options: SinkOptions): TurnSink {
  switch (dialect.name) {
    case 'gateway':
      return sseSink(reply, gatewayTerminals, options)
    case 'openai-sse':
      return sseSink(reply, openAiTerminals(dialect.framing, dialect.includeUsage), options)
    case 'openai-json':
      return jsonSink(reply, dialect.framing, options.thoughtsFirst)
  }
}

/** Takes the response over from Fastify and opens the stream at once. */
function sseSink(reply: FastifyReply, terminals: Terminals, options: SinkOptions): TurnSink {
  const clock = new Clock(options.thoughtsFirst)
  const writer = new SseWriter(reply.raw, options.heartbeats, options.bufferBytes, options.onTooSlow)
  reply.hijack()
  writer.open(reply.getHeaders())
  // The opening event goes with the first one after it: by then the deployment is the one that serves.
  let opening = terminals.meta ? () => terminals.meta?.(options.meta()) ?? '' : undefined
  const first = () => {
    const frame = opening?.() ?? ''
    opening = undefined
    return frame
  }
  /** Set at the turn's end: nothing but the terminal event is written after it, and that once. */
  let ending = false
  const end = (terminal: string) => {
    if (ending) return
    ending = true
    const frames = first() + terminal
    void options.keep(terminal).then(() => writer.finish(frames))
  }
  return {
    resumable: true,
    get timing() {
      return clock.timing
    },
    chunks(frames) {
      if (ending) return
      clock.chunks()
      writer.chunks(opening ? first() + frames : frames)
    },
    answered: () => clock.answered(),
    done: (message) => end(terminals.done(message, clock.timing)),
    error: (error) => end(terminals.error(error)),
    abandon: () => writer.abandon()
  }
}

/** The reply through Fastify (its hooks and serializer), once the turn ends. */
function jsonSink(reply: FastifyReply, openai: OpenAiFraming, thoughtsFirst: boolean): TurnSink {
  const clock = new Clock(thoughtsFirst)
  let open = true
  const send = (status: number, body: unknown) => {
    if (!open) return
    open = false
    void reply.status(status).send(body)
  }
  return {
    resumable: false,
    get timing() {
      return clock.timing
    },
    chunks: () => clock.chunks(),
    answered: () => clock.answered(),
    done: (message) => send(200, openAiCompletion(openai, message)),
    error(error) {
      const { status } = errorCodes[error.code]
      if (status === 429 || status === 503) {
        void reply.header('retry-after', String(error.retryAfterMs ? Math.ceil(error.retryAfterMs / 1000) : RETRY_AFTER_S))
      }
      send(status, openAiError(error.code, error.message))
    },
    abandon() {
      open = false
    }
  }
}
