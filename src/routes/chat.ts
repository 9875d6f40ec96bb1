// POST /api/chat: validate (the body, its tools and the calls its results answer), admit, take the
// session's turn lock, wait for upstream quota, then hand the turn to chat/turn.ts, which streams it.
import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { errorCodes, GatewayError } from '../errors.js'
import type { Content } from '../protocol.js'
import { estimateTokens } from '../quota/quota-gate.js'
import type { SessionStore } from '../sessions/store.js'
import { runTurn, type TurnDeps } from '../chat/turn.js'
import { gatewayDialect } from '../chat/sse-frames.js'
import { contentTexts, historyContents, userContent } from '../chat/conversation.js'
import { checkThinking, checkToolChoice, checkTools } from '../chat/tools.js'
import { chatBodySchema, ErrorBodySchema, type ChatBody } from './chat-schema.js'

/** Marks a request whose log line the stream writes itself when it ends. */
export const STREAMED = 'streamed'

export const errorResponses = Object.fromEntries(
  [...new Set(Object.values(errorCodes).map((e) => e.status))].filter((s) => s < 499 || s === 503).map((s) => [s, ErrorBodySchema])
)

export const chatRoutes: FastifyPluginAsync<TurnDeps> = async (fastify, deps) => {
  const { config, dispatcher, sessions, lifecycle, quota, caps } = deps
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.post(
    '/api/chat',
    {
      schema: {
        summary: 'Send a chat turn and receive the reply as Server-Sent Events',
        body: chatBodySchema(config),
        response: {
          200: {
            description: 'text/event-stream: meta, chunk*, then exactly one done or error',
            content: { 'text/event-stream': { schema: { type: 'string' } } }
          },
          ...errorResponses
        }
      }
    },
    async (request, reply) => {
      const body = request.body
      if (body.history && body.sessionId) throw new GatewayError('bad_request', 'Send either sessionId or history, not both.')
      if (body.tools) checkTools(body.tools)
      checkToolChoice(body.toolChoice, body.tools)
      checkThinking(body.thinking)
      // A stateless or new conversation is checked before admission; a continued session's once its turn lock is held.
      const history = body.history ? historyContents(body.history) : undefined
      if (!body.sessionId) userContent(history ?? [], body.message, body.toolResults)
      lifecycle.admit()
      if (dispatcher.full) throw new GatewayError('overloaded', undefined, 1)
      const giveBack = caps.take(request.clientKey)
      let sessionId: string | null = null
      let contents: Content[]
      let user: Content
      try {
        const session = await openSession(sessions, body, history)
        sessionId = session.sessionId
        user = userContent(session.contents, body.message, body.toolResults)
        contents = [...session.contents, user]
        await quota.acquire(estimateTokens([...contentTexts(contents), body.system ?? '', JSON.stringify(body.tools ?? [])]))
      } catch (err) {
        giveBack()
        if (sessionId) await sessions.release(sessionId)
        throw err
      }
      reply.hijack()
      request.outcome = STREAMED
      runTurn(deps, reply, {
        requestId: request.id,
        sessionId,
        user,
        userText: body.message ?? '',
        log: request.log,
        onEnd: giveBack,
        dialect: gatewayDialect,
        request: {
          model: body.model ?? config.DEFAULT_MODEL,
          contents,
          ...(body.system ? { system: body.system } : {}),
          ...(body.generation ? { generation: body.generation } : {}),
          ...(body.tools ? { tools: body.tools } : {}),
          ...(body.toolChoice ? { toolChoice: body.toolChoice } : {}),
          ...(body.thinking ? { thinking: body.thinking } : {})
        }
      })
    }
  )
}

async function openSession(
  sessions: SessionStore,
  body: ChatBody,
  history: Content[] | undefined
): Promise<{ sessionId: string | null; contents: Content[] }> {
  if (history) return { sessionId: null, contents: history }
  if (body.sessionId) return { sessionId: body.sessionId, contents: await sessions.begin(body.sessionId) }
  return { sessionId: await sessions.create(), contents: [] }
}
