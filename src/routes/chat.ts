// POST /api/chat: validate (the body, its tools and the calls its results answer), admit (which
// takes the session's turn lock and waits for upstream quota), then run the turn as the gateway's SSE.
import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { GatewayError } from '../errors.js'
import type { Content } from '../protocol.js'
import type { SessionStore } from '../sessions/store.js'
import { admitTurn } from '../chat/admission.js'
import { runTurn, type TurnDeps } from '../chat/turn.js'
import { historyContents, userContent } from '../chat/conversation.js'
import { checkThinking, checkToolChoice, checkTools } from '../chat/tools.js'
import { chatBodySchema, errorResponses, type ChatBody } from './chat-schema.js'

export const chatRoutes: FastifyPluginAsync<TurnDeps> = async (fastify, deps) => {
  const { config, sessions } = deps
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
      const turn = await admitTurn(deps, request.clientKey, async (locked) => {
        const session = await openSession(sessions, body, history, request.clientKey)
        if (session.sessionId) locked(session.sessionId)
        const user = userContent(session.contents, body.message, body.toolResults)
        return {
          sessionId: session.sessionId,
          user,
          request: {
            model: body.model ?? config.DEFAULT_MODEL,
            contents: [...session.contents, user],
            ...(body.system ? { system: body.system } : {}),
            ...(body.generation ? { generation: body.generation } : {}),
            ...(body.tools ? { tools: body.tools } : {}),
            ...(body.toolChoice ? { toolChoice: body.toolChoice } : {}),
            ...(body.thinking ? { thinking: body.thinking } : {})
          }
        }
      })
      runTurn(deps, request, reply, { ...turn, userText: body.message ?? '', dialect: { name: 'gateway' } })
    }
  )
}

async function openSession(
  sessions: SessionStore,
  body: ChatBody,
  history: Content[] | undefined,
  /** request.clientKey: a session made with an API key belongs to that key. */
  tenant: string
): Promise<{ sessionId: string | null; contents: Content[] }> {
  if (history) return { sessionId: null, contents: history }
  if (body.sessionId) return { sessionId: body.sessionId, contents: await sessions.begin(body.sessionId, tenant) }
  return { sessionId: await sessions.create(tenant), contents: [] }
}
