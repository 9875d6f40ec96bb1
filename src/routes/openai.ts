// POST /v1/chat/completions and GET /v1/models: the OpenAI wire format over the same admission,
// turn machinery, pool, isolation, quota, limits and metrics as /api/chat; streamed or one JSON body.
// Errors take OpenAI's shape (error-handler.ts) with the registry's codes and statuses. What a body
// becomes upstream (messages, tools, reasoning) is openai-request.ts.
import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { GatewayError } from '../errors.js'
import { admitTurn } from '../chat/admission.js'
import { runTurn, type TurnDeps } from '../chat/turn.js'
import { OpenAiBodySchema, upstreamRequest } from './openai-request.js'

export const openAiRoutes: FastifyPluginAsync<TurnDeps> = async (fastify, deps) => {
  const { config } = deps
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

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
      const turn = await admitTurn(deps, request.clientKey, async () => ({
        request: upstream,
        user: upstream.contents.at(-1) ?? { role: 'user', parts: [] },
        sessionId: null
      }))
      const framing = { id: `chatcmpl-${randomUUID()}`, created: Math.floor(Date.now() / 1000), model: body.model }
      runTurn(deps, request, reply, {
        ...turn,
        userText,
        dialect: body.stream
          ? { name: 'openai-sse', framing, includeUsage: body.stream_options?.include_usage === true }
          : { name: 'openai-json', framing }
      })
      return reply
    }
  )
}
