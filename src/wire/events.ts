// The SSE events a worker frames for a stream (chunk, thought, tool_call), in the gateway's dialect
// or OpenAI's. Pure string building, imported by the worker; what surrounds the varying part of
// each event is built once per stream, so an event costs a few concatenations.
import type { OpenAiFraming, ToolCall } from '../protocol.js'
import { openAiToolCallId } from './tool-call-id.js'

/** Every event of the gateway's dialect (README, "Events"): meta, done and error are framed by the front. */
export const GATEWAY_EVENTS = ['meta', 'chunk', 'thought', 'tool_call', 'done', 'error'] as const

export interface EventFramer {
  /** `id` numbers every event of the stream (Last-Event-ID resumes after it). */
  chunk(id: number, text: string): string
  thought(id: number, text: string): string
  /** `index`: the call's place among this reply's calls (OpenAI's `tool_calls[].index`). */
  toolCall(id: number, call: ToolCall, index: number): string
}

export function gatewayFramer(): EventFramer {
  return {
    chunk: (id, text) => `id: ${id}\nevent: chunk\ndata: {"text":${JSON.stringify(text)}}\n\n`,
    thought: (id, text) => `id: ${id}\nevent: thought\ndata: {"text":${JSON.stringify(text)}}\n\n`,
    toolCall: (id, call) => `id: ${id}\nevent: tool_call\ndata: ${JSON.stringify(call)}\n\n`
  }
}

export function openAiFramer(openai: OpenAiFraming): EventFramer {
  const head = JSON.stringify({ id: openai.id, object: 'chat.completion.chunk', created: openai.created, model: openai.model })
  const before = `\ndata: ${head.slice(0, -1)},"choices":[{"index":0,"delta":{"role":"assistant",`
  const after = '},"finish_reason":null}]}\n\n'
  return {
    chunk: (id, text) => `id: ${id}${before}"content":${JSON.stringify(text)}${after}`,
    thought: (id, text) => `id: ${id}${before}"reasoning_content":${JSON.stringify(text)}${after}`,
    toolCall: (id, call, index) => {
      const delta = [
        {
          index,
          id: openAiToolCallId(call.id, call.signature),
          type: 'function',
          function: { name: call.name, arguments: JSON.stringify(call.args) }
        }
      ]
      return `id: ${id}${before}"tool_calls":${JSON.stringify(delta)}${after}`
    }
  }
}
