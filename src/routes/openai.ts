// POST /v1/chat/completions and GET /v1/models: the OpenAI wire format over the same pool,
// isolation, quota, limits and metrics as /api/chat. Errors take OpenAI's shape and status. What a
// body becomes upstream (messages, tools, reasoning) is openai-request.ts.
import { randomUUID } from 'node:crypto'
import type { FastifyError, FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { errorCodes, GatewayError, wireError, type ErrorCode } from '../errors.js'
import type { DoneMessage, WireError } from '../protocol.js'
import { estimateTokens } from '../quota/quota-gate.js'
import { contentTexts } from '../chat/conversation.js'
import type { Dialect } from '../chat/sse-frames.js'
import { runTurn, type TurnDeps } from '../chat/turn.js'
import { openAiToolCallId } from '../wire/tool-call-id.js'
import { OpenAiBodySchema, upstreamRequest } from './openai-request.js'
import { STREAMED } from './chat.js'

const FINISH: Record<string, string> = { STOP: 'stop', MAX_TOKENS: 'length' }
/** A reply that ended with calls is `tool_calls`, whatever Gemini's own reason (it says STOP). */
const finishReason = (message: DoneMessage) => (message.toolCalls > 0 ? 'tool_calls' : (FINISH[message.finishReason] ?? 'stop'))

function openAiError(code: string, message: string): { error: { message: string; type: string; code: string } } {
  const status = (errorCodes as Record<string, { status: number }>)[code]?.status ?? 500
  const type =
    status === 401 ? 'authentication_error' : status === 429 ? 'rate_limit_error' : status < 500 ? 'invalid_request_error' : 'server_error'
  return { error: { message, type, code } }
}

// OpenAI counts reasoning inside completion_tokens; Gemini counts thoughts apart.
const usageOf = ({ usage }: DoneMessage) => ({
  prompt_tokens: usage.promptTokens,
  completion_tokens: usage.outputTokens + (usage.thoughtTokens ?? 0),
  total_tokens: usage.totalTokens,
  ...(usage.thoughtTokens ? { completion_tokens_details: { reasoning_tokens: usage.thoughtTokens } } : {}),
  ...(usage.cachedTokens ? { prompt_tokens_details: { cached_tokens: usage.cachedTokens } } : {})
})

function streamDialect(id: string, created: number, model: string, includeUsage: boolean): Dialect {
  const chunk = (extra: object) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, ...extra })}\n\n`
  return {
    meta: false,
    openai: { id, created, model },
    done: (message) =>
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: finishReason(message) }] }) +
      (includeUsage ? chunk({ choices: [], usage: usageOf(message) }) : '') +
      'data: [DONE]\n\n',
    error: (error) => `data: ${JSON.stringify(openAiError(error.code, error.message))}\n\n`
  }
}

export const openAiRoutes: FastifyPluginAsync<TurnDeps> = async (fastify, deps) => {
  const { config, dispatcher, lifecycle, quota, caps, metrics } = deps
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  fastify.setErrorHandler((err: FastifyError | GatewayError, request, reply) => {
    const code: ErrorCode =
      err instanceof GatewayError ? err.code : err.validation || (err.statusCode ?? 500) < 500 ? 'bad_request' : 'internal_error'
    if (code === 'internal_error') request.log.error({ err }, 'unhandled error')
    if (err instanceof GatewayError && err.retryAfterS !== undefined) void reply.header('retry-after', String(err.retryAfterS))
    metrics.admissionRefused.inc({ code })
    request.outcome = code
    const message = code === 'internal_error' ? errorCodes.internal_error.message : err.message
    return reply.status(errorCodes[code].status).send(openAiError(code, message))
  })

  app.get('/v1/models', { schema: { summary: 'OpenAI-compatible: the models a request may name' } }, async () => ({
    object: 'list',
    data: config.allowedModels.map((id) => ({ id, object: 'model', created: 0, owned_by: 'google' }))
  }))

  app.post(
    '/v1/chat/completions',
    { schema: { summary: 'OpenAI-compatible chat completions, streaming or not', body: OpenAiBodySchema } },
    async (request, reply) => {
      const body = request.body
      if (!config.allowedModels.includes(body.model))
        throw new GatewayError('bad_request', `The model '${body.model}' is not one of ${config.allowedModels.join(', ')}.`)
      const { request: upstream, userText } = upstreamRequest(body)
      lifecycle.admit()
      if (dispatcher.full) throw new GatewayError('overloaded', undefined, 1)
      const giveBack = caps.take(request.clientKey)
      try {
        await quota.acquire(
          estimateTokens([...contentTexts(upstream.contents), upstream.system ?? '', JSON.stringify(upstream.tools ?? [])])
        )
      } catch (err) {
        giveBack()
        throw err
      }
      const user = upstream.contents.at(-1) ?? { role: 'user', parts: [] }
      const id = `chatcmpl-${randomUUID()}`
      const created = Math.floor(Date.now() / 1000)

      if (body.stream) {
        reply.hijack()
        request.outcome = STREAMED
        runTurn(deps, reply, {
          requestId: request.id,
          sessionId: null,
          user,
          userText,
          log: request.log,
          onEnd: giveBack,
          request: upstream,
          dialect: streamDialect(id, created, body.model, body.stream_options?.include_usage === true)
        })
        return
      }

      // Not streaming: the same worker path, the chunks gathered into one answer.
      metrics.streamStarted()
      const started = performance.now()
      let cancel = () => {}
      const result = await new Promise<DoneMessage | WireError>((resolve) => {
        const handle = dispatcher.start(
          { requestId: request.id, request: upstream, wantContent: true },
          {
            chunks: () => {},
            answer: () => {},
            retry: (code) => metrics.retried(code),
            done: resolve,
            error: resolve
          }
        )
        cancel = () => handle.cancel()
        request.raw.once('close', () => {
          if (!reply.sent) {
            cancel()
            resolve(wireError('client_disconnected'))
          }
        })
      })
      giveBack()
      const timing = { ttftMs: null, totalMs: Math.round(performance.now() - started) }
      if ('code' in result) {
        metrics.streamEnded(result.code, timing, undefined)
        if (result.code === 'upstream_rate_limited' && result.retryAfterMs) quota.pauseFor(result.retryAfterMs)
        const status = (errorCodes as Record<string, { status: number }>)[result.code]?.status ?? 502
        if (result.retryAfterMs) void reply.header('retry-after', String(Math.ceil(result.retryAfterMs / 1000)))
        request.outcome = result.code
        return reply.status(status).send(openAiError(result.code, result.message))
      }
      metrics.streamEnded('done', timing, result.usage)
      return {
        id,
        object: 'chat.completion',
        created,
        model: body.model,
        choices: [{ index: 0, message: assistantMessage(result), finish_reason: finishReason(result) }],
        usage: usageOf(result)
      }
    }
  )
}

/** The reply as one assistant message: text as content, calls as tool_calls (signatures in their ids), thoughts when asked. */
function assistantMessage(message: DoneMessage) {
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
  return {
    role: 'assistant' as const,
    content: calls.length > 0 && text === '' ? null : text,
    ...(calls.length > 0 ? { tool_calls: calls } : {}),
    ...(message.thoughts ? { reasoning_content: message.thoughts } : {})
  }
}
