// The body of POST /api/chat: validated by Fastify's ajv and published in the OpenAPI document.
// What a schema cannot say (a tool's parameters Gemini would refuse, results that answer no call)
// is checked in src/chat/tools.ts and src/chat/conversation.ts.
import { Type, type Static } from '@sinclair/typebox'
import type { Config } from '../config.js'
import { errorCodes } from '../errors.js'

export const MESSAGE_MAX_CHARS = 32_000
/** Gemini's own limit on function declarations per request. */
export const MAX_TOOLS = 128
/** The largest output Gemini models produce; also the cap on thinking budgets' neighbour, maxOutputTokens. */
export const MAX_OUTPUT_TOKENS = 65_536
export const MAX_THINKING_BUDGET = 32_768
export const TOOL_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_.-]{0,63}$'
export const THINKING_LEVELS = ['minimal', 'low', 'medium', 'high'] as const

// `enum` rather than a union of literals: ajv then names the allowed values in its error.
export const oneOf = <T extends string>(values: readonly T[], description?: string) =>
  Type.Unsafe<T>({ type: 'string', enum: values, ...(description ? { description } : {}) })

const text = (description: string) => Type.String({ minLength: 1, maxLength: MESSAGE_MAX_CHARS, description })
const toolName = (description: string) => Type.String({ pattern: TOOL_NAME_PATTERN, description })
const callId = Type.String({ minLength: 1, maxLength: 16_384, description: 'the id of the tool_call event' })
const jsonObject = (description: string) => Type.Record(Type.String(), Type.Unknown(), { description })

export const ToolCallSchema = Type.Object(
  {
    id: callId,
    name: toolName('the function called'),
    args: jsonObject('its arguments'),
    signature: Type.Optional(Type.String({ minLength: 1, description: 'the thought signature of the tool_call event, as received' }))
  },
  { additionalProperties: false }
)

export const ToolResultSchema = Type.Object(
  {
    id: callId,
    name: toolName('the function that was called'),
    result: Type.Unknown({ description: 'any JSON value; a non-object is sent to Gemini as {result: value}' })
  },
  { additionalProperties: false }
)

export const ToolSchema = Type.Object(
  {
    name: toolName('the function name the model calls'),
    description: Type.Optional(Type.String({ maxLength: MESSAGE_MAX_CHARS })),
    parameters: Type.Optional(jsonObject('a JSON Schema object: the function arguments'))
  },
  { additionalProperties: false }
)

export const ThinkingSchema = Type.Object(
  {
    budget: Type.Optional(Type.Integer({ minimum: -1, maximum: MAX_THINKING_BUDGET, description: 'thinking tokens: -1 dynamic, 0 off' })),
    level: Type.Optional(oneOf(THINKING_LEVELS, 'Gemini 3 thinking level')),
    include: Type.Optional(Type.Boolean({ description: 'send thoughts as thought events' }))
  },
  { additionalProperties: false }
)

export function chatBodySchema(config: Config) {
  return Type.Object(
    {
      message: Type.Optional(text("the user's turn; optional with toolResults")),
      sessionId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{8,128}$', description: 'continue a server-side conversation' })),
      history: Type.Optional(
        Type.Array(
          Type.Object(
            {
              role: oneOf(['user', 'model'] as const),
              text: Type.Optional(text('a prior turn')),
              toolCalls: Type.Optional(
                Type.Array(ToolCallSchema, { minItems: 1, maxItems: MAX_TOOLS, description: 'model turns: the calls it made' })
              ),
              toolResults: Type.Optional(
                Type.Array(ToolResultSchema, { minItems: 1, maxItems: MAX_TOOLS, description: 'user turns: the results it returned' })
              )
            },
            { additionalProperties: false }
          ),
          { maxItems: config.HISTORY_MAX_TURNS, description: 'stateless mode: prior turns, oldest first; not with sessionId' }
        )
      ),
      model: Type.Optional(oneOf(config.allowedModels, 'one of ALLOWED_MODELS')),
      system: Type.Optional(Type.String({ maxLength: MESSAGE_MAX_CHARS, description: 'system instruction' })),
      generation: Type.Optional(
        Type.Object(
          {
            temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
            topP: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
            topK: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000 })),
            maxOutputTokens: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_OUTPUT_TOKENS }))
          },
          { additionalProperties: false }
        )
      ),
      tools: Type.Optional(Type.Array(ToolSchema, { maxItems: MAX_TOOLS, description: 'functions the model may call' })),
      toolChoice: Type.Optional(
        Type.Union([
          oneOf(['auto', 'none', 'required'] as const),
          Type.Object({ name: toolName('the one function to call') }, { additionalProperties: false })
        ])
      ),
      toolResults: Type.Optional(
        Type.Array(ToolResultSchema, { minItems: 1, maxItems: MAX_TOOLS, description: "results of the previous turn's tool calls" })
      ),
      thinking: Type.Optional(ThinkingSchema)
    },
    { additionalProperties: false }
  )
}

export type ChatBody = Static<ReturnType<typeof chatBodySchema>>
export type HistoryTurn = NonNullable<ChatBody['history']>[number]
export type ToolResult = Static<typeof ToolResultSchema>

export const ErrorBodySchema = Type.Object(
  {
    error: Type.Object({ code: Type.String(), message: Type.String() })
  },
  { $id: 'ErrorBody' }
)

/** The refusals a route documents: every registry status a client can receive (499 is only logged). */
export const errorResponses = Object.fromEntries(
  [...new Set(Object.values(errorCodes).map((e) => e.status))].filter((s) => s < 499 || s === 503).map((s) => [s, ErrorBodySchema])
)
