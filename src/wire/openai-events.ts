// OpenAI's chat-completions dialect: chat.completion.chunk events for a stream, one chat.completion
// body otherwise, and OpenAI's error shape. Pure, like the gateway's dialect; the registry's codes
// and statuses hold here too.
import { errorCodes, type ErrorCode } from '../errors.js'
import type { DoneMessage, OpenAiFraming } from '../protocol.js'
import type { EventFramer, Terminals } from './framing.js'
import { idLine } from './ids.js'
import { openAiToolCallId } from './tool-call-id.js'

export interface OpenAiErrorBody {
  error: { message: string; type: string; code: ErrorCode }
}

export function openAiError(code: ErrorCode, message: string): OpenAiErrorBody {
  const { status } = errorCodes[code]
  const type =
    status === 401 ? 'authentication_error' : status === 429 ? 'rate_limit_error' : status < 500 ? 'invalid_request_error' : 'server_error'
  return { error: { message, type, code } }
}

const FINISH: Record<string, string> = { STOP: 'stop', MAX_TOKENS: 'length' }
/** A reply that ended with calls is `tool_calls`, whatever Gemini's own reason (it says STOP). */
const finishReason = (message: DoneMessage) => (message.toolCalls > 0 ? 'tool_calls' : (FINISH[message.finishReason] ?? 'stop'))

// OpenAI counts reasoning inside completion_tokens; Gemini counts thoughts apart.
const usageOf = ({ usage }: DoneMessage) => ({
  prompt_tokens: usage.promptTokens,
  completion_tokens: usage.outputTokens + (usage.thoughtTokens ?? 0),
  total_tokens: usage.totalTokens,
  ...(usage.thoughtTokens ? { completion_tokens_details: { reasoning_tokens: usage.thoughtTokens } } : {}),
  ...(usage.cachedTokens ? { prompt_tokens_details: { cached_tokens: usage.cachedTokens } } : {})
})

const head = (openai: OpenAiFraming, object: string) => ({ id: openai.id, object, created: openai.created, model: openai.model })

export function openAiFramer(openai: OpenAiFraming): EventFramer {
  const before = `data: ${JSON.stringify(head(openai, 'chat.completion.chunk')).slice(0, -1)},"choices":[{"index":0,"delta":{"role":"assistant",`
  const after = '},"finish_reason":null}]}\n\n'
  return {
    chunk: (id, text) => `${idLine(id)}${before}"content":${JSON.stringify(text)}${after}`,
    thought: (id, text) => `${idLine(id)}${before}"reasoning_content":${JSON.stringify(text)}${after}`,
    toolCall: (id, call, index) => {
      const delta = [
        {
          index,
          id: openAiToolCallId(call.id, call.signature),
          type: 'function',
          function: { name: call.name, arguments: JSON.stringify(call.args) }
        }
      ]
      return `${idLine(id)}${before}"tool_calls":${JSON.stringify(delta)}${after}`
    }
  }
}

/** A stream has no meta event; it ends with a finish_reason chunk, usage when asked for, and `[DONE]`. */
export function openAiTerminals(openai: OpenAiFraming, includeUsage: boolean): Terminals {
  const chunk = (extra: object) => `data: ${JSON.stringify({ ...head(openai, 'chat.completion.chunk'), ...extra })}\n\n`
  return {
    done: (message) =>
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: finishReason(message) }] }) +
      (includeUsage ? chunk({ choices: [], usage: usageOf(message) }) : '') +
      'data: [DONE]\n\n',
    error: (error) => `data: ${JSON.stringify(openAiError(error.code, error.message))}\n\n`
  }
}

/** The whole reply as one chat.completion: text as content, calls as tool_calls (signatures in their ids), thoughts when asked. */
export function openAiCompletion(openai: OpenAiFraming, message: DoneMessage) {
  const parts = message.content?.parts ?? []
  const text = parts.map((p) => (typeof p.text === 'string' ? p.text : '')).join('')
  const calls = parts.flatMap((p) =>
    p.functionCall
      ? [
          {
            id: openAiToolCallId(p.functionCall.id ?? '', p.thoughtSignature),
            type: 'function' as const,
            function: { name: p.functionCall.name, arguments: JSON.stringify(p.functionCall.args ?? {}) }
          }
        ]
      : []
  )
  const assistant = {
    role: 'assistant' as const,
    content: calls.length > 0 && text === '' ? null : text,
    ...(calls.length > 0 ? { tool_calls: calls } : {}),
    ...(message.thoughts ? { reasoning_content: message.thoughts } : {})
  }
  return {
    ...head(openai, 'chat.completion'),
    choices: [{ index: 0, message: assistant, finish_reason: finishReason(message) }],
    usage: usageOf(message)
  }
}
