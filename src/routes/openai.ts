// POST /v1/chat/completions and GET /v1/models: the OpenAI wire format over the same pool,
// isolation, quota, limits and metrics as /api/chat. Errors take OpenAI's shape and status.
import { randomUUID } from 'node:crypto'
import type { FastifyError, FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type, type Static } from '@sinclair/typebox'
import { errorCodes, GatewayError, wireError, type ErrorCode } from '../errors.js'
import type { DoneMessage, Turn, WireError } from '../protocol.js'
import { estimateTokens } from '../quota/quota-gate.js'
import type { Dialect } from '../chat/sse-frames.js'
import { runTurn, type TurnDeps } from '../chat/turn.js'
import { MESSAGE_MAX_CHARS } from './chat-schema.js'
import { STREAMED } from './chat.js'

const Content = Type.Union([
  Type.String({ maxLength: MESSAGE_MAX_CHARS }),
  Type.Array(Type.Object({ type: Type.Literal('text'), text: Type.String({ maxLength: MESSAGE_MAX_CHARS }) }), { maxItems: 64 })
])
// Open objects: OpenAI clients send fields (n, user, seed, …) a gateway may ignore.
const Body = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 128 }),
  messages: Type.Array(
    Type.Object({
      role: Type.Unsafe<'system' | 'developer' | 'user' | 'assistant'>({
        type: 'string',
        enum: ['system', 'developer', 'user', 'assistant']
      }),
      content: Content
    }),
    { minItems: 1, maxItems: 1_000 }
  ),
  stream: Type.Optional(Type.Boolean()),
  stream_options: Type.Optional(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 65_536 })),
  max_completion_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 65_536 }))
})
type OpenAiBody = Static<typeof Body>

const FINISH: Record<string, string> = { STOP: 'stop', MAX_TOKENS: 'length' }
const finishReason = (reason: string) => FINISH[reason] ?? 'stop'

function openAiError(code: string, message: string): { error: { message: string; type: string; code: string } } {
  const status = (errorCodes as Record<string, { status: number }>)[code]?.status ?? 500
  const type =
    status === 401 ? 'authentication_error' : status === 429 ? 'rate_limit_error' : status < 500 ? 'invalid_request_error' : 'server_error'
  return { error: { message, type, code } }
}

const usageOf = (message: DoneMessage) => ({
  prompt_tokens: message.usage.promptTokens,
  completion_tokens: message.usage.outputTokens,
  total_tokens: message.usage.totalTokens
})

function streamDialect(id: string, created: number, model: string, includeUsage: boolean): Dialect {
  const chunk = (extra: object) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, ...extra })}\n\n`
  return {
    meta: false,
    openai: { id, created, model },
    done: (message) =>
      chunk({ choices: [{ index: 0, delta: {}, finish_reason: finishReason(message.finishReason) }] }) +
      (includeUsage ? chunk({ choices: [], usage: usageOf(message) }) : '') +
      'data: [DONE]\n\n',
    error: (error) => `data: ${JSON.stringify(openAiError(error.code, error.message))}\n\n`
  }
}

/** OpenAI messages → Gemini turns: system and developer messages become the system instruction. */
function toTurns(body: OpenAiBody): { turns: Turn[]; system: string; userText: string } {
  const text = (content: OpenAiBody['messages'][number]['content']) =>
    typeof content === 'string' ? content : content.map((p) => p.text).join('')
  const system: string[] = []
  const turns: Turn[] = []
  for (const m of body.messages) {
    if (m.role === 'system' || m.role === 'developer') system.push(text(m.content))
    else turns.push({ role: m.role === 'assistant' ? 'model' : 'user', text: text(m.content) })
  }
  const last = turns.at(-1)
  if (last?.role !== 'user' || !last.text) throw new GatewayError('bad_request', 'The last message must be a non-empty user message.')
  return { turns, system: system.join('\n\n'), userText: last.text }
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
    { schema: { summary: 'OpenAI-compatible chat completions, streaming or not', body: Body } },
    async (request, reply) => {
      const body = request.body
      if (!config.allowedModels.includes(body.model))
        throw new GatewayError('bad_request', `The model '${body.model}' is not one of ${config.allowedModels.join(', ')}.`)
      const { turns, system, userText } = toTurns(body)
      lifecycle.admit()
      if (dispatcher.full) throw new GatewayError('overloaded', undefined, 1)
      const giveBack = caps.take(request.clientKey)
      try {
        await quota.acquire(estimateTokens([...turns.map((t) => t.text), system]))
      } catch (err) {
        giveBack()
        throw err
      }
      const maxOutputTokens = body.max_completion_tokens ?? body.max_tokens
      const upstream = {
        model: body.model,
        turns,
        ...(system ? { system } : {}),
        generation: {
          ...(body.temperature === undefined ? {} : { temperature: body.temperature }),
          ...(body.top_p === undefined ? {} : { topP: body.top_p }),
          ...(maxOutputTokens === undefined ? {} : { maxOutputTokens })
        }
      }
      const id = `chatcmpl-${randomUUID()}`
      const created = Math.floor(Date.now() / 1000)

      if (body.stream) {
        reply.hijack()
        request.outcome = STREAMED
        runTurn(deps, reply, {
          requestId: request.id,
          sessionId: null,
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
          { requestId: request.id, request: upstream, wantText: true },
          {
            chunks: () => {},
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
        if (result.code === 'upstream_rate_limited' && result.retryAfterMs) void quota.pauseFor(result.retryAfterMs)
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
        choices: [
          { index: 0, message: { role: 'assistant', content: result.text ?? '' }, finish_reason: finishReason(result.finishReason) }
        ],
        usage: usageOf(result)
      }
    }
  )
}
