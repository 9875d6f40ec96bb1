// OpenAI's chat-completions wire as vLLM, Ollama, llama.cpp and LM Studio serve it, over the same
// replies as the Gemini paths: the body becomes a Gemini request (messages as turns, tools as
// declarations), and the planned Gemini events become chat.completion.chunk deltas, or one
// chat.completion. A local server sends thoughts (`reasoning_content`) whenever the model thinks.
import { randomBytes } from 'node:crypto'
import { isObject, type JsonObject } from './request.js'

export interface OpenAiRequest {
  /** The same conversation as a Gemini generateContent body. */
  gemini: JsonObject
  model: string
  stream: boolean
  includeUsage: boolean
}

const textOf = (content: unknown): string => {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) return content.map((p) => (isObject(p) && typeof p.text === 'string' ? p.text : '')).join('')
  return ''
}

const parseArgs = (json: unknown): unknown => {
  try {
    return JSON.parse(typeof json === 'string' ? json : '{}')
  } catch {
    return {}
  }
}

/** The body as a Gemini request, or the message of a 400. */
export function parseOpenAiRequest(body: unknown): OpenAiRequest | string {
  if (!isObject(body) || !Array.isArray(body.messages)) return "'messages' is a required property"
  const system: string[] = []
  const contents: JsonObject[] = []
  const names = new Map<string, string>()
  for (const message of body.messages) {
    if (!isObject(message)) return 'Each message must be an object.'
    const text = textOf(message.content)
    switch (message.role) {
      case 'system':
      case 'developer':
        system.push(text)
        break
      case 'user':
        contents.push({ role: 'user', parts: [{ text }] })
        break
      case 'assistant': {
        const calls = Array.isArray(message.tool_calls) ? message.tool_calls.filter(isObject) : []
        const parts: JsonObject[] = text ? [{ text }] : []
        for (const call of calls) {
          const fn = isObject(call.function) ? call.function : {}
          const name = typeof fn.name === 'string' ? fn.name : ''
          if (typeof call.id === 'string') names.set(call.id, name)
          parts.push({ functionCall: { name, args: parseArgs(fn.arguments), ...(typeof call.id === 'string' ? { id: call.id } : {}) } })
        }
        contents.push({ role: 'model', parts: parts.length > 0 ? parts : [{ text: '' }] })
        break
      }
      case 'tool': {
        const id = typeof message.tool_call_id === 'string' ? message.tool_call_id : ''
        const result = parseArgs(text)
        const part = { functionResponse: { name: names.get(id) ?? '', id, response: isObject(result) ? result : { result: text } } }
        const previous = contents.at(-1)
        if (previous?.role === 'user' && (previous.parts as JsonObject[]).every((p) => p.functionResponse)) {
          ;(previous.parts as JsonObject[]).push(part)
        } else contents.push({ role: 'user', parts: [part] })
        break
      }
      default:
        return `Unknown role: ${JSON.stringify(message.role)}`
    }
  }
  const gemini: JsonObject = { contents, generationConfig: { thinkingConfig: { includeThoughts: true } } }
  if (system.length > 0) gemini.systemInstruction = { parts: system.map((text) => ({ text })) }
  const max = body.max_completion_tokens ?? body.max_tokens
  if (typeof max === 'number') (gemini.generationConfig as JsonObject).maxOutputTokens = max
  if (Array.isArray(body.tools)) {
    gemini.tools = [
      {
        functionDeclarations: body.tools
          .filter(isObject)
          .map((t) => (isObject(t.function) ? t.function : {}))
          .map((f) => ({ name: f.name, description: f.description, parametersJsonSchema: f.parameters }))
      }
    ]
  }
  const choice = body.tool_choice
  if (choice === 'none' || choice === 'required' || choice === 'auto') {
    gemini.toolConfig = { functionCallingConfig: { mode: choice === 'required' ? 'ANY' : choice.toUpperCase() } }
  } else if (isObject(choice) && isObject(choice.function) && typeof choice.function.name === 'string') {
    gemini.toolConfig = { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: [choice.function.name] } }
  }
  const options = isObject(body.stream_options) ? body.stream_options : {}
  return {
    gemini,
    model: typeof body.model === 'string' ? body.model : 'local-model',
    stream: body.stream === true,
    includeUsage: options.include_usage === true
  }
}

/** OpenAI's error body; a 429 also gets `Retry-After` (seconds), the only delay OpenAI-compatible servers send. */
export function openAiErrorBody(status: number, message: string): string {
  const type = status === 429 ? 'rate_limit_error' : status < 500 ? 'invalid_request_error' : 'server_error'
  return JSON.stringify({ error: { message, type, param: null, code: status } })
}

interface Reply {
  deltas: JsonObject[]
  finishReason: string | null
  usage: JsonObject | undefined
  /** The message of an error chunk the stream ends with. */
  error: string | undefined
}

const FINISH: Record<string, string> = { STOP: 'stop', MAX_TOKENS: 'length' }

/** The deltas the Gemini events hold, in order: text, reasoning, and each call streamed in three pieces as vLLM does. */
function replyOf(events: string[]): Reply {
  const reply: Reply = { deltas: [], finishReason: null, usage: undefined, error: undefined }
  let calls = 0
  for (const event of events) {
    const chunk = JSON.parse(event.slice('data: '.length)) as JsonObject
    if (isObject(chunk.error)) {
      reply.error = typeof chunk.error.message === 'string' ? chunk.error.message : 'Internal server error'
      continue
    }
    if (isObject(chunk.promptFeedback)) reply.finishReason = 'content_filter'
    const candidate = Array.isArray(chunk.candidates) && isObject(chunk.candidates[0]) ? chunk.candidates[0] : {}
    const parts = isObject(candidate.content) && Array.isArray(candidate.content.parts) ? candidate.content.parts.filter(isObject) : []
    for (const part of parts) {
      if (typeof part.text === 'string' && part.text !== '')
        reply.deltas.push(part.thought ? { reasoning_content: part.text } : { content: part.text })
      const call = isObject(part.functionCall) ? part.functionCall : undefined
      if (!call) continue
      const index = calls++
      const args = JSON.stringify(call.args ?? {})
      const half = Math.floor(args.length / 2)
      const id = typeof call.id === 'string' ? call.id : `chatcmpl-tool-${randomBytes(8).toString('hex')}`
      reply.deltas.push(
        { tool_calls: [{ index, id, type: 'function', function: { name: call.name, arguments: '' } }] },
        { tool_calls: [{ index, function: { arguments: args.slice(0, half) } }] },
        { tool_calls: [{ index, function: { arguments: args.slice(half) } }] }
      )
    }
    const reason = candidate.finishReason
    if (typeof reason === 'string') reply.finishReason = calls > 0 ? 'tool_calls' : (FINISH[reason] ?? 'content_filter')
    const usage = isObject(chunk.usageMetadata) ? chunk.usageMetadata : undefined
    if (usage) {
      const n = (v: unknown) => (typeof v === 'number' ? v : 0)
      const thoughts = n(usage.thoughtsTokenCount)
      reply.usage = {
        prompt_tokens: n(usage.promptTokenCount),
        completion_tokens: n(usage.candidatesTokenCount) + thoughts,
        total_tokens: n(usage.totalTokenCount),
        ...(thoughts > 0 ? { completion_tokens_details: { reasoning_tokens: thoughts } } : {})
      }
    }
  }
  return reply
}

/**
 * The planned Gemini events as an OpenAI stream: one event per delta, the finish, usage when asked for,
 * [DONE]. A stream that is `cut` (drop-after) stops after its deltas, as a dropped connection does.
 */
export function openAiStreamEvents(events: string[], request: OpenAiRequest, cut = false): string[] {
  const reply = replyOf(events)
  const head = {
    id: `chatcmpl-${randomBytes(12).toString('hex')}`,
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model: request.model
  }
  const event = (json: unknown) => `data: ${JSON.stringify(json)}\n\n`
  const out = reply.deltas.map((delta, i) =>
    event({ ...head, choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', ...delta } : delta, finish_reason: null }] })
  )
  if (reply.error !== undefined) {
    out.push(event({ error: { message: reply.error, type: 'server_error', param: null, code: 500 } }))
    return out
  }
  if (cut) return out
  if (reply.finishReason !== null) out.push(event({ ...head, choices: [{ index: 0, delta: {}, finish_reason: reply.finishReason }] }))
  if (request.includeUsage && reply.usage) out.push(event({ ...head, choices: [], usage: reply.usage }))
  out.push('data: [DONE]\n\n')
  return out
}

/** The planned Gemini events as one chat.completion, or an error (a stream that would have failed). */
export function openAiCompletion(events: string[], request: OpenAiRequest): { status: number; body: string } {
  const reply = replyOf(events)
  if (reply.error !== undefined) return { status: 500, body: openAiErrorBody(500, reply.error) }
  let content = ''
  let reasoning = ''
  const calls: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }> = []
  for (const delta of reply.deltas) {
    if (typeof delta.content === 'string') content += delta.content
    if (typeof delta.reasoning_content === 'string') reasoning += delta.reasoning_content
    for (const piece of Array.isArray(delta.tool_calls) ? delta.tool_calls.filter(isObject) : []) {
      const fn = isObject(piece.function) ? piece.function : {}
      if (typeof piece.id === 'string') calls.push({ id: piece.id, type: 'function', function: { name: String(fn.name), arguments: '' } })
      const call = calls.at(-1)
      if (call && typeof fn.arguments === 'string') call.function.arguments += fn.arguments
    }
  }
  const message = {
    role: 'assistant',
    content: calls.length > 0 && content === '' ? null : content,
    ...(reasoning ? { reasoning_content: reasoning } : {}),
    ...(calls.length > 0 ? { tool_calls: calls } : {})
  }
  return {
    status: 200,
    body: JSON.stringify({
      id: `chatcmpl-${randomBytes(12).toString('hex')}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: request.model,
      choices: [{ index: 0, message, finish_reason: reply.finishReason ?? 'stop' }],
      usage: reply.usage
    })
  }
}
