// SSE framing for the events the front process writes itself. Chunk, thought and tool_call events
// are framed by the worker (src/wire/events.ts) in the same format. Every data line is one line of JSON.
import type { DoneMessage, OpenAiFraming, WireError } from '../protocol.js'
import type { Meta, Timing } from './sse-writer.js'

/** How a turn's stream is framed: the gateway's own events, or OpenAI's chat.completion.chunk. */
export interface Dialect {
  /** Whether the stream opens with a meta event. */
  meta: boolean
  done(message: DoneMessage, timing: Timing): string
  error(error: WireError): string
  /** Passed to the worker, which frames the chunk events. */
  openai?: OpenAiFraming
}

export const metaFrame = (meta: Meta) => `event: meta\ndata: ${JSON.stringify(meta)}\n\n`

export const doneFrame = (message: DoneMessage, timing: Timing) =>
  `event: done\ndata: ${JSON.stringify({
    finishReason: message.finishReason,
    usage: message.usage,
    timing,
    ...(message.toolCalls > 0 ? { toolCalls: message.toolCalls } : {})
  })}\n\n`

export const errorFrame = (error: WireError) => `event: error\ndata: ${JSON.stringify(error)}\n\n`

export const gatewayDialect: Dialect = { meta: true, done: doneFrame, error: errorFrame }
