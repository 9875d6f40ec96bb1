// What every dialect of a turn's stream provides. The worker frames the events that carry the
// reply (chunk, thought, tool_call) with an EventFramer; the front frames the first and the last
// (meta, done, error) with Terminals. Types only.
import type { DoneMessage, ToolCall, WireError } from '../protocol.js'

export interface Meta {
  requestId: string
  sessionId: string | null
  model: string
  /** The deployment that served the turn (UPSTREAMS_FILE's id, or the model without one). */
  deployment: string
}

export interface Timing {
  ttftMs: number | null
  totalMs: number
}

export interface EventFramer {
  /** `id` numbers every event of the stream (Last-Event-ID resumes after it). */
  chunk(id: number, text: string): string
  thought(id: number, text: string): string
  /** `index`: the call's place among this reply's calls (OpenAI's `tool_calls[].index`). */
  toolCall(id: number, call: ToolCall, index: number): string
}

export interface Terminals {
  /** The event that opens a stream, when the dialect has one. */
  meta?(meta: Meta): string
  done(message: DoneMessage, timing: Timing): string
  error(error: WireError): string
}
