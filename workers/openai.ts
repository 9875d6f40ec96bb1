// OpenAI-compatible servers (vLLM, Ollama, llama.cpp, LM Studio, TGI): the turn as a streamed
// chat-completions request, and the reply read into the same pieces as Gemini's: `content` as text,
// `reasoning_content` (or Ollama's and newer vLLM's `reasoning`) as thoughts, `tool_calls` deltas
// assembled into complete function calls, usage and the finish. Errors map to Gemini's codes: a 429
// with its Retry-After, 5xx, a refused connection.
//
//   stream() ─ undici.request POST {baseUrl}/chat/completions ─┬─ 200 text/event-stream ─▶ eventsource-parser ─▶ DeltaReader ─▶ pieces
//                                                             └─ anything else ─▶ OpenAiStatusError ─▶ classify
import { StringDecoder } from 'node:string_decoder'
import { createParser } from 'eventsource-parser'
import { Agent, request as httpRequest } from 'undici'
import type { Content, DeploymentSettings, Part, UpstreamRequest, Usage } from '../src/protocol.js'
import type { UpstreamPiece } from './gemini-parts.js'
import { SHAPES_ONLY, type Redactor } from '../src/wire/redact.js'
import { STREAM_CUT, statusFailure, transportFailure, unanswered, type Upstream, type UpstreamFailure } from './upstream.js'

/** One event larger than this is not a chat-completion chunk. */
const MAX_EVENT_CHARS = 16 << 20

class OpenAiStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterMs: number | undefined
  ) {
    super(message)
  }
}

/** `Retry-After`: seconds, or an HTTP date. */
function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (value === undefined || value === '') return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return Math.max(0, Math.round(seconds * 1000))
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

/** The provider's message, or the body itself when it is not JSON (statusFailure redacts and cuts it). */
const errorMessage = (body: string): string | undefined => {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown }
    const message = typeof parsed.error === 'string' ? parsed.error : (parsed.error?.message ?? parsed.message)
    return typeof message === 'string' ? message : undefined
  } catch {
    return body || undefined
  }
}

function classify(err: unknown, redactor: Redactor): UpstreamFailure {
  if (err instanceof OpenAiStatusError) return statusFailure(err.status, err.message, err.retryAfterMs, redactor)
  return transportFailure(err)
}

type Message = Record<string, unknown>

/** The conversation as chat-completion messages: calls keep their ids (these servers need them to match results). */
function messagesOf(request: UpstreamRequest): Message[] {
  const messages: Message[] = request.system ? [{ role: 'system', content: request.system }] : []
  for (const content of request.contents) messages.push(...messagesOfContent(content))
  return messages
}

function messagesOfContent({ role, parts }: Content): Message[] {
  const text = parts.map((p) => (typeof p.text === 'string' && p.thought !== true ? p.text : '')).join('')
  if (role === 'model') {
    const calls = parts.flatMap((p) =>
      p.functionCall
        ? [
            {
              id: p.functionCall.id ?? '',
              type: 'function',
              function: { name: p.functionCall.name, arguments: JSON.stringify(p.functionCall.args ?? {}) }
            }
          ]
        : []
    )
    return [
      { role: 'assistant', content: text === '' && calls.length > 0 ? null : text, ...(calls.length > 0 ? { tool_calls: calls } : {}) }
    ]
  }
  const results = parts.flatMap((p) =>
    p.functionResponse
      ? [{ role: 'tool', tool_call_id: p.functionResponse.id ?? '', content: JSON.stringify(p.functionResponse.response) }]
      : []
  )
  return text === '' && results.length > 0 ? results : [...results, { role: 'user', content: text }]
}

function bodyOf(request: UpstreamRequest, model: string): Record<string, unknown> {
  const g = request.generation ?? {}
  const choice = request.toolChoice
  return {
    model,
    messages: messagesOf(request),
    stream: true,
    stream_options: { include_usage: true },
    ...(g.temperature === undefined ? {} : { temperature: g.temperature }),
    ...(g.topP === undefined ? {} : { top_p: g.topP }),
    // Not OpenAI's, but vLLM, llama.cpp and Ollama take it.
    ...(g.topK === undefined ? {} : { top_k: g.topK }),
    ...(g.maxOutputTokens === undefined ? {} : { max_tokens: g.maxOutputTokens }),
    ...(request.tools?.length
      ? {
          tools: request.tools.map((t) => ({
            type: 'function',
            function: {
              name: t.name,
              ...(t.description ? { description: t.description } : {}),
              parameters: t.parameters ?? { type: 'object', properties: {} }
            }
          }))
        }
      : {}),
    ...(choice ? { tool_choice: typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } } } : {}),
    ...(request.parallelToolCalls === false ? { parallel_tool_calls: false } : {}),
    ...(request.thinking?.level ? { reasoning_effort: request.thinking.level } : {})
  }
}

const FINISH: Record<string, string> = {
  stop: 'STOP',
  tool_calls: 'STOP',
  function_call: 'STOP',
  length: 'MAX_TOKENS',
  content_filter: 'SAFETY'
}

interface Delta {
  content?: string | null
  reasoning_content?: string | null
  reasoning?: string | null
  tool_calls?: Array<{ index?: number; id?: string; function?: { name?: string; arguments?: string } }>
}

interface Chunk {
  choices?: Array<{ delta?: Delta; finish_reason?: string | null }>
  usage?: {
    prompt_tokens?: number
    completion_tokens?: number
    total_tokens?: number
    completion_tokens_details?: { reasoning_tokens?: number }
    prompt_tokens_details?: { cached_tokens?: number }
  } | null
  error?: { message?: string; code?: unknown } | string
}

/** Calls arrive as pieces by index (id and name first, arguments in fragments); a call is complete at the finish. */
class DeltaReader {
  /** By index; a server may skip one. */
  private readonly calls: Array<{ id: string | undefined; name: string; args: string } | undefined> = []

  read(chunk: Chunk): UpstreamPiece {
    const piece: UpstreamPiece = { parts: [], thought: '' }
    const choice = chunk.choices?.[0]
    const delta = choice?.delta
    if (delta) {
      const thought = delta.reasoning_content ?? delta.reasoning
      if (typeof thought === 'string') piece.thought += thought
      if (typeof delta.content === 'string' && delta.content !== '') piece.parts.push({ text: delta.content })
      for (const call of delta.tool_calls ?? []) {
        const index = call.index ?? this.calls.length
        const open = (this.calls[index] ??= { id: undefined, name: '', args: '' })
        if (call.id) open.id = call.id
        if (call.function?.name) open.name += call.function.name
        if (call.function?.arguments) open.args += call.function.arguments
      }
    }
    if (choice?.finish_reason) {
      piece.finishReason = FINISH[choice.finish_reason] ?? choice.finish_reason.toUpperCase()
      piece.parts.push(...this.end())
    }
    if (chunk.usage) piece.usage = usageOf(chunk.usage)
    return piece
  }

  /** The calls assembled so far, as function-call parts. */
  end(): Part[] {
    return this.calls
      .splice(0)
      .flatMap((call) =>
        call ? [{ functionCall: { name: call.name, args: argsOf(call.args), ...(call.id ? { id: call.id } : {}) } }] : []
      )
  }
}

function argsOf(json: string): Record<string, unknown> {
  if (json.trim() === '') return {}
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch {
    throw new OpenAiStatusError(502, 'The model sent tool-call arguments that are not JSON.', undefined)
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : { value }
}

function usageOf(usage: NonNullable<Chunk['usage']>): Usage {
  const thoughts = usage.completion_tokens_details?.reasoning_tokens ?? 0
  const cached = usage.prompt_tokens_details?.cached_tokens
  const prompt = usage.prompt_tokens ?? 0
  const completion = usage.completion_tokens ?? 0
  return {
    promptTokens: prompt,
    outputTokens: completion - thoughts,
    totalTokens: usage.total_tokens ?? prompt + completion,
    ...(thoughts ? { thoughtTokens: thoughts } : {}),
    ...(cached ? { cachedTokens: cached } : {})
  }
}

/** `redactor`: the worker's secrets, kept out of the provider text an error relays. */
export function createOpenAiUpstream(deployment: DeploymentSettings, redactor: Redactor = SHAPES_ONLY): Upstream {
  // The chat task owns every deadline (first token, idle, total), so the transport sets none.
  const dispatcher = new Agent({ headersTimeout: 0, bodyTimeout: 0 })
  const url = `${(deployment.baseUrl ?? '').replace(/\/+$/, '')}/chat/completions`
  const headers = {
    'content-type': 'application/json',
    accept: 'text/event-stream',
    ...(deployment.apiKey ? { authorization: `Bearer ${deployment.apiKey}` } : {})
  }

  async function* stream(request: UpstreamRequest, signal: AbortSignal): AsyncGenerator<UpstreamPiece> {
    const res = await httpRequest(url, {
      method: 'POST',
      headers,
      body: JSON.stringify(bodyOf(request, deployment.model)),
      signal,
      dispatcher
    }).catch(unanswered)
    if (res.statusCode !== 200) {
      const body = await res.body.text()
      throw new OpenAiStatusError(res.statusCode, errorMessage(body) ?? '', retryAfterMs(res.headers['retry-after']))
    }
    const reader = new DeltaReader()
    // Events parsed from one network read; null is `[DONE]`.
    const data: Array<string | null> = []
    const parser = createParser({
      onEvent: (event) => data.push(event.data === '[DONE]' ? null : event.data),
      onError: (error) => {
        if (error.type === 'max-buffer-size-exceeded') throw new Error(`Upstream event larger than ${MAX_EVENT_CHARS} characters`)
      },
      maxBufferSize: MAX_EVENT_CHARS
    })
    const decoder = new StringDecoder('utf8')
    let finished = false
    try {
      read: for await (const buffer of res.body as AsyncIterable<Buffer>) {
        parser.feed(decoder.write(buffer))
        for (const json of data.splice(0)) {
          if (json === null) {
            finished = true
            break read
          }
          const chunk = JSON.parse(json) as Chunk
          if (chunk.error) {
            const error = typeof chunk.error === 'string' ? { message: chunk.error } : chunk.error
            throw new OpenAiStatusError(
              typeof error.code === 'number' && error.code >= 400 ? error.code : 500,
              error.message ?? '',
              undefined
            )
          }
          yield reader.read(chunk)
        }
      }
    } finally {
      if (!res.body.readableEnded) res.body.dump().catch(() => {})
    }
    // A body that ended before [DONE] was cut, however cleanly its socket closed: never a reply.
    if (!finished) throw Object.assign(new Error('The stream ended before [DONE].'), { code: STREAM_CUT })
    const rest = reader.end()
    if (rest.length > 0) yield { parts: rest, thought: '' }
  }

  return { stream, classify: (err) => classify(err, redactor) }
}
