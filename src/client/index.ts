// A small typed client for POST /api/chat: an async iterable of typed events, with automatic resume
// (GET /api/chat/streams/:requestId + Last-Event-ID) when the connection drops before the stream ends.
//
// Runs in browsers and Node 20: it uses only fetch, AbortController/AbortSignal, TextDecoder and
// eventsource-parser (no node: imports).
//
// Contract:
// - Every iteration ends with exactly one terminal event (`done` or `error`), except when the caller
//   aborts `signal`: then the iteration rejects with the signal's reason (an `AbortError`).
// - A refusal before the stream starts (non-200 JSON `{error:{code,message}}`) is yielded as one
//   `error` event carrying the HTTP `status` (it is never thrown).
// - A network failure that cannot be recovered is an `error` event with code `network_error`
//   (client-side code); a stream that can no longer be resumed (204/404 on resume) is an `error`
//   event with code `stream_not_found`.
import { createParser, type EventSourceMessage } from 'eventsource-parser'

export interface Usage {
  promptTokens: number
  /** Answer tokens, thoughts not included. */
  outputTokens: number
  totalTokens: number
  thoughtTokens?: number
  cachedTokens?: number
}
export interface Timing {
  ttftMs: number
  totalMs: number
}

export interface MetaEvent {
  type: 'meta'
  requestId: string
  sessionId: string | null
  model: string
  /** The deployment that served the turn (older gateways do not send it). */
  deployment?: string
}
export interface ChunkEvent {
  type: 'chunk'
  /** The event's id (Last-Event-ID), shared by chunk, thought and tool_call events: 1, 2, 3 … */
  id: number
  text: string
}
/** A thought summary, only when the turn asked for thoughts (`thinking.include`); never part of the answer. */
export interface ThoughtEvent {
  type: 'thought'
  id: number
  text: string
}
/** A function the model calls; answer it with `toolResults` in the next turn. */
export interface ToolCallEvent {
  type: 'tool_call'
  /** The event's id (Last-Event-ID). */
  eventId: number
  /** The call's id, unique in the conversation: send it back in `toolResults`. */
  id: string
  name: string
  args: Record<string, unknown>
  /** Gemini's thought signature; keep it with the call when you send the history yourself. */
  signature?: string
}
export interface DoneEvent {
  type: 'done'
  finishReason: string
  usage: Usage
  timing: Timing
  /** How many tool_call events the reply ended with. */
  toolCalls?: number
}
export interface ErrorEvent {
  type: 'error'
  /** A gateway error code (docs/api.md), or the client-side `network_error`. */
  code: string
  message: string
  retryable: boolean
  retryAfterMs?: number
  /** The HTTP status when the request was refused before its stream started. */
  status?: number
}
export type ChatEvent = MetaEvent | ChunkEvent | ThoughtEvent | ToolCallEvent | DoneEvent | ErrorEvent
export type TerminalEvent = DoneEvent | ErrorEvent

export interface ToolCall {
  id: string
  name: string
  args: Record<string, unknown>
  signature?: string
}
export interface ToolResult {
  /** The id of the tool_call event this answers. */
  id: string
  name: string
  /** Any JSON value. */
  result: unknown
}
export interface HistoryTurn {
  role: 'user' | 'model'
  text?: string
  /** Model turns: the calls it made (with their signatures). */
  toolCalls?: ToolCall[]
  /** User turns: the results it returned. */
  toolResults?: ToolResult[]
}
export interface Tool {
  name: string
  description?: string
  /** A JSON Schema object. */
  parameters?: Record<string, unknown>
}
export interface Thinking {
  budget?: number
  level?: 'minimal' | 'low' | 'medium' | 'high'
  include?: boolean
}

export interface ResumeOptions {
  /** Resume attempts after one drop (default 3; 0 disables resume). */
  attempts?: number
  /** First backoff in ms, doubled per attempt (default 250). */
  backoffMs?: number
}

export interface ChatOptions {
  /** Gateway origin, e.g. `http://127.0.0.1:3000`; default '' (same origin, in a browser). */
  baseUrl?: string
  /** The user's turn; optional when the turn carries toolResults. */
  message?: string
  sessionId?: string
  history?: HistoryTurn[]
  model?: string
  system?: string
  tools?: Tool[]
  toolChoice?: 'auto' | 'none' | 'required' | { name: string }
  toolResults?: ToolResult[]
  thinking?: Thinking
  signal?: AbortSignal
  headers?: Record<string, string>
  resume?: ResumeOptions
  /** The fetch to use (default globalThis.fetch). */
  fetch?: typeof fetch
}

const RETRYABLE_STATUS = new Set([408, 409, 429, 502, 503, 504])

/** Sends one chat turn; iterate the result to receive its events. */
export function chat(options: ChatOptions): AsyncIterable<ChatEvent> {
  return { [Symbol.asyncIterator]: () => run(options) }
}

export interface ChatTurn {
  events: ChatEvent[]
  /** The answer's text. */
  text: string
  /** The thoughts' text ('' unless asked for). */
  thoughts: string
  toolCalls: ToolCallEvent[]
  meta?: MetaEvent
  terminal: TerminalEvent
}

/** Collects a whole turn: the events, the answer, the thoughts, the tool calls and the terminal event. */
export async function chatText(options: ChatOptions): Promise<ChatTurn> {
  const events: ChatEvent[] = []
  for await (const event of chat(options)) events.push(event)
  const terminal = events.at(-1) as TerminalEvent
  const meta = events.find((e): e is MetaEvent => e.type === 'meta')
  const textOf = (type: 'chunk' | 'thought') => events.map((e) => (e.type === type ? e.text : '')).join('')
  const toolCalls = events.filter((e): e is ToolCallEvent => e.type === 'tool_call')
  return { events, text: textOf('chunk'), thoughts: textOf('thought'), toolCalls, terminal, ...(meta ? { meta } : {}) }
}

interface StreamState {
  requestId: string | null
  lastId: number
  metaSeen: boolean
  terminal: boolean
}

async function* run(options: ChatOptions): AsyncGenerator<ChatEvent, void, undefined> {
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis)
  const base = (options.baseUrl ?? '').replace(/\/+$/, '')
  const { signal } = options
  const attempts = options.resume?.attempts ?? 3
  const backoffMs = options.resume?.backoffMs ?? 250
  const body: Record<string, unknown> = {}
  for (const key of ['message', 'sessionId', 'history', 'model', 'system', 'tools', 'toolChoice', 'toolResults', 'thinking'] as const) {
    if (options[key] !== undefined) body[key] = options[key]
  }

  let response: Response
  try {
    response = await doFetch(`${base}/api/chat`, {
      method: 'POST',
      headers: { ...options.headers, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {})
    })
  } catch (err) {
    if (signal?.aborted) throw signal.reason ?? err
    yield networkError(err)
    return
  }
  if (response.status !== 200 || !response.body) {
    yield await refusal(response)
    return
  }

  const state: StreamState = { requestId: response.headers.get('x-request-id'), lastId: 0, metaSeen: false, terminal: false }
  let failures = 0
  for (;;) {
    try {
      for await (const event of readEvents(response, state)) {
        if ('id' in event) failures = 0
        yield event
        if (event.type === 'done' || event.type === 'error') return
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err
    }
    if (signal?.aborted) throw signal.reason
    // The connection dropped before a terminal event: resume from the last chunk seen.
    if (!state.requestId || attempts === 0) {
      yield networkError(new Error('the connection was lost before the reply ended'))
      return
    }
    const next = yield* resume(state.requestId)
    if (!next) return
    response = next
  }

  /** A resumed response, or undefined after yielding the terminal error event. */
  async function* resume(requestId: string): AsyncGenerator<ChatEvent, Response | undefined, undefined> {
    while (failures < attempts) {
      await sleep(backoffMs * 2 ** failures, signal)
      failures++
      let res: Response
      try {
        res = await doFetch(`${base}/api/chat/streams/${encodeURIComponent(requestId)}`, {
          headers: { ...options.headers, accept: 'text/event-stream', 'last-event-id': String(state.lastId) },
          ...(signal ? { signal } : {})
        })
      } catch (err) {
        if (signal?.aborted) throw signal.reason ?? err
        continue
      }
      if (res.status === 200 && res.body) return res
      if (res.status === 204 || res.status === 404) {
        await res.body?.cancel().catch(() => {})
        yield {
          type: 'error',
          code: 'stream_not_found',
          message: 'The connection was lost and the reply can no longer be resumed.',
          retryable: true
        }
        return undefined
      }
      await res.body?.cancel().catch(() => {})
    }
    yield networkError(new Error('the connection was lost and could not be resumed'))
    return undefined
  }
}

/** Parses one SSE response into typed events, skipping what was already seen (resume replays). */
async function* readEvents(response: Response, state: StreamState): AsyncGenerator<ChatEvent, void, undefined> {
  const queue: ChatEvent[] = []
  const parser = createParser({
    onEvent(message) {
      const event = toEvent(message, state)
      if (event) queue.push(event)
    }
  })
  if (!response.body) return
  const reader = (response.body as ReadableStream<Uint8Array>).getReader()
  const decoder = new TextDecoder()
  let finished = false
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) {
        finished = true
        parser.feed(decoder.decode())
      } else parser.feed(decoder.decode(value, { stream: true }))
      for (let event = queue.shift(); event; event = queue.shift()) {
        yield event
        if (event.type === 'done' || event.type === 'error') return
      }
      if (finished) return
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => {})
  }
}

function toEvent(message: EventSourceMessage, state: StreamState): ChatEvent | undefined {
  if (state.terminal) return undefined
  let data: Partial<Record<string, unknown>>
  try {
    data = JSON.parse(message.data) as Partial<Record<string, unknown>>
  } catch {
    return undefined
  }
  const text = (name: string, fallback: string) => (typeof data[name] === 'string' ? data[name] : fallback)
  switch (message.event) {
    case 'meta':
      if (state.metaSeen) return undefined
      state.metaSeen = true
      state.requestId = text('requestId', '')
      return {
        type: 'meta',
        requestId: state.requestId,
        sessionId: typeof data.sessionId === 'string' ? data.sessionId : null,
        model: text('model', '')
      }
    case 'chunk':
    case 'thought':
    case 'tool_call': {
      // One id sequence for every event that has one: what a resume replays is skipped here.
      const id = Number(message.id)
      if (Number.isFinite(id)) {
        if (id <= state.lastId) return undefined
        state.lastId = id
      }
      if (message.event === 'tool_call') {
        const signature = text('signature', '')
        return {
          type: 'tool_call',
          eventId: id,
          id: text('id', ''),
          name: text('name', ''),
          args: (data.args ?? {}) as Record<string, unknown>,
          ...(signature ? { signature } : {})
        }
      }
      return { type: message.event, id, text: text('text', '') }
    }
    case 'done':
      state.terminal = true
      // The gateway's done event, as docs/api.md documents it.
      return {
        type: 'done',
        finishReason: text('finishReason', ''),
        usage: data.usage as Usage,
        timing: data.timing as Timing,
        ...(typeof data.toolCalls === 'number' ? { toolCalls: data.toolCalls } : {})
      }
    case 'error':
      state.terminal = true
      return {
        type: 'error',
        code: text('code', 'internal_error'),
        message: text('message', ''),
        retryable: data.retryable === true,
        ...(typeof data.retryAfterMs === 'number' ? { retryAfterMs: data.retryAfterMs } : {})
      }
    default:
      return undefined
  }
}

async function refusal(response: Response): Promise<ErrorEvent> {
  let code = `http_${response.status}`
  let message = `The gateway answered ${response.status}.`
  try {
    const body = (await response.json()) as { error?: { code?: unknown; message?: unknown } }
    if (typeof body.error?.code === 'string') code = body.error.code
    if (typeof body.error?.message === 'string') message = body.error.message
  } catch {
    /* not JSON */
  }
  const retryAfter = Number(response.headers.get('retry-after'))
  return {
    type: 'error',
    code,
    message,
    retryable: RETRYABLE_STATUS.has(response.status),
    status: response.status,
    ...(response.headers.has('retry-after') && Number.isFinite(retryAfter) ? { retryAfterMs: retryAfter * 1000 } : {})
  }
}

function networkError(err: unknown): ErrorEvent {
  const detail = err instanceof Error ? err.message : String(err)
  return { type: 'error', code: 'network_error', message: `Could not reach the gateway: ${detail}`, retryable: true }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  // The caller's abort reason, an AbortError unless it gave its own, is what the iteration rejects with.
  const reason = () => signal?.reason as Error
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(reason())
      return
    }
    const onAbort = () => {
      clearTimeout(timer)
      reject(reason())
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
