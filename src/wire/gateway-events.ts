// The gateway's own SSE dialect (docs/api.md, "Events"). Pure string building: what surrounds the varying
// part of an event is a constant, so an event costs a few concatenations.
import type { WireError } from '../protocol.js'
import type { EventFramer, Terminals } from './framing.js'
import { idLine } from './ids.js'

/** Every event of the dialect, in the order a stream may send them. */
export const GATEWAY_EVENTS = ['meta', 'chunk', 'thought', 'tool_call', 'done', 'error'] as const

export const gatewayFramer: EventFramer = {
  chunk: (id, text) => `${idLine(id)}event: chunk\ndata: {"text":${JSON.stringify(text)}}\n\n`,
  thought: (id, text) => `${idLine(id)}event: thought\ndata: {"text":${JSON.stringify(text)}}\n\n`,
  toolCall: (id, call) => `${idLine(id)}event: tool_call\ndata: ${JSON.stringify(call)}\n\n`
}

export const errorFrame = (error: WireError): string => `event: error\ndata: ${JSON.stringify(error)}\n\n`

export const gatewayTerminals: Terminals = {
  meta: (meta) => `event: meta\ndata: ${JSON.stringify(meta)}\n\n`,
  done: (message, timing) =>
    `event: done\ndata: ${JSON.stringify({
      finishReason: message.finishReason,
      usage: message.usage,
      timing,
      ...(message.toolCalls > 0 ? { toolCalls: message.toolCalls } : {})
    })}\n\n`,
  error: errorFrame
}
