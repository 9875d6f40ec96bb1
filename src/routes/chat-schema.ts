// The body of POST /api/chat: validated by Fastify's ajv and published in the OpenAPI document.
import { Type, type Static } from '@sinclair/typebox'
import type { Config } from '../config.js'

export const MESSAGE_MAX_CHARS = 32_000

// `enum` rather than a union of literals: ajv then names the allowed values in its error.
const oneOf = <T extends string>(values: readonly T[], description?: string) =>
  Type.Unsafe<T>({ type: 'string', enum: values, ...(description ? { description } : {}) })

export function chatBodySchema(config: Config) {
  const text = (description: string) => Type.String({ minLength: 1, maxLength: MESSAGE_MAX_CHARS, description })
  return Type.Object(
    {
      message: text("the user's turn"),
      sessionId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{8,128}$', description: 'continue a server-side conversation' })),
      history: Type.Optional(
        Type.Array(Type.Object({ role: oneOf(['user', 'model'] as const), text: text('a prior turn') }, { additionalProperties: false }), {
          maxItems: config.HISTORY_MAX_TURNS,
          description: 'stateless mode: prior turns, oldest first; not with sessionId'
        })
      ),
      model: Type.Optional(oneOf(config.allowedModels, 'one of ALLOWED_MODELS')),
      system: Type.Optional(Type.String({ maxLength: MESSAGE_MAX_CHARS, description: 'system instruction' })),
      generation: Type.Optional(
        Type.Object(
          {
            temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
            topP: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
            topK: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000 })),
            maxOutputTokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 65_536 }))
          },
          { additionalProperties: false }
        )
      )
    },
    { additionalProperties: false }
  )
}

export type ChatBody = Static<ReturnType<typeof chatBodySchema>>

export const ErrorBodySchema = Type.Object(
  {
    error: Type.Object({ code: Type.String(), message: Type.String() })
  },
  { $id: 'ErrorBody' }
)
