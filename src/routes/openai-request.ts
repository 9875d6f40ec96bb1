// The body of POST /v1/chat/completions and what it becomes upstream: OpenAI messages as the
// gateway's contents (assistant tool_calls as function calls, their thought signatures recovered
// from the ids, role "tool" results as function responses named by the call they answer), tools,
// tool_choice, and reasoning settings as thinking.
import { Type, type Static } from '@sinclair/typebox'
import { answerCalls, callPart, type ToolResultIn } from '../chat/conversation.js'
import { checkToolChoice, checkTools } from '../chat/tools.js'
import { GatewayError } from '../errors.js'
import type { Content, Part, ThinkingOptions, ToolChoice, ToolDeclaration, UpstreamRequest } from '../protocol.js'
import { parseOpenAiToolCallId } from '../wire/tool-call-id.js'
import {
  MAX_OUTPUT_TOKENS,
  MAX_THINKING_BUDGET,
  MAX_TOOLS,
  MESSAGE_MAX_CHARS,
  oneOf,
  THINKING_LEVELS,
  TOOL_NAME_PATTERN
} from './chat-schema.js'

const TextContent = Type.Union([
  Type.String({ maxLength: MESSAGE_MAX_CHARS }),
  Type.Array(Type.Object({ type: Type.Literal('text'), text: Type.String({ maxLength: MESSAGE_MAX_CHARS }) }), { maxItems: 64 }),
  Type.Null()
])
const Name = Type.String({ pattern: TOOL_NAME_PATTERN })
const ToolCallSchema = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 16_384 }),
  type: Type.Optional(Type.Literal('function')),
  function: Type.Object({ name: Name, arguments: Type.String({ maxLength: 1 << 20 }) })
})
// Open objects: OpenAI clients send fields (n, user, seed, name, refusal, …) a gateway may ignore.
export const OpenAiBodySchema = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 128 }),
  messages: Type.Array(
    Type.Object({
      role: oneOf(['system', 'developer', 'user', 'assistant', 'tool'] as const),
      content: Type.Optional(TextContent),
      tool_calls: Type.Optional(Type.Array(ToolCallSchema, { maxItems: MAX_TOOLS })),
      tool_call_id: Type.Optional(Type.String({ minLength: 1, maxLength: 16_384 }))
    }),
    { minItems: 1, maxItems: 1_000 }
  ),
  stream: Type.Optional(Type.Boolean()),
  stream_options: Type.Optional(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  max_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_OUTPUT_TOKENS })),
  max_completion_tokens: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_OUTPUT_TOKENS })),
  tools: Type.Optional(
    Type.Array(
      Type.Object({
        type: Type.Literal('function'),
        function: Type.Object({
          name: Name,
          description: Type.Optional(Type.String({ maxLength: MESSAGE_MAX_CHARS })),
          parameters: Type.Optional(Type.Record(Type.String(), Type.Unknown()))
        })
      }),
      { maxItems: MAX_TOOLS }
    )
  ),
  tool_choice: Type.Optional(
    Type.Union([
      oneOf(['auto', 'none', 'required'] as const),
      Type.Object({ type: Type.Literal('function'), function: Type.Object({ name: Name }) })
    ])
  ),
  parallel_tool_calls: Type.Optional(Type.Boolean()),
  reasoning_effort: Type.Optional(oneOf(THINKING_LEVELS)),
  include_reasoning: Type.Optional(Type.Boolean()),
  // Google's own OpenAI-compatible endpoint takes its thinking settings here.
  extra_body: Type.Optional(
    Type.Object({
      google: Type.Optional(
        Type.Object({
          thinking_config: Type.Optional(
            Type.Object({
              include_thoughts: Type.Optional(Type.Boolean()),
              thinking_budget: Type.Optional(Type.Integer({ minimum: -1, maximum: MAX_THINKING_BUDGET })),
              thinking_level: Type.Optional(oneOf(THINKING_LEVELS))
            })
          )
        })
      )
    })
  )
})
export type OpenAiBody = Static<typeof OpenAiBodySchema>
type Message = OpenAiBody['messages'][number]

const refuse = (message: string): never => {
  throw new GatewayError('bad_request', message)
}

const textOf = (content: Message['content']) => (typeof content === 'string' ? content : (content ?? []).map((p) => p.text).join(''))

/**
 * The conversation: system and developer messages become the system instruction, assistant turns
 * the model's (with their calls), tool messages the results of the calls they name. Consecutive
 * messages of one role share one content, so that parallel results answer their calls together.
 */
export function toContents(messages: Message[]): { contents: Content[]; system: string; userText: string } {
  const system: string[] = []
  const contents: Content[] = []
  const add = (role: Content['role'], parts: Part[]) => {
    const last = contents.at(-1)
    if (last?.role === role) last.parts.push(...parts)
    else contents.push({ role, parts })
  }
  let results: Array<ToolResultIn & { at: number }> = []
  const flushResults = () => {
    if (results.length === 0) return
    const first = results[0]?.at ?? 0
    add('user', answerCalls(contents.at(-1), results, `body/messages/${first}`))
    results = []
  }
  messages.forEach((m, i) => {
    if (m.role === 'tool') {
      results.push({ ...toolResult(m, i, contents.at(-1)), at: i })
      return
    }
    flushResults()
    const text = textOf(m.content)
    if (m.role === 'system' || m.role === 'developer') system.push(text)
    else if (m.role === 'user') add('user', [{ text }])
    else {
      const parts = [
        ...(text ? [{ text }] : []),
        ...(m.tool_calls ?? []).map((c, k) => assistantCall(c, `body/messages/${i}/tool_calls/${k}`))
      ]
      if (parts.length > 0) add('model', parts)
    }
  })
  flushResults()
  const last = contents.at(-1)
  const userText = last?.parts.map((p) => p.text ?? '').join('') ?? ''
  if (last?.role !== 'user' || last.parts.every((p) => p.text === '')) refuse('The last message must be a non-empty user or tool message.')
  return { contents, system: system.join('\n\n'), userText }
}

function assistantCall(call: Static<typeof ToolCallSchema>, where: string): Part {
  let args: unknown
  try {
    args = JSON.parse(call.function.arguments)
  } catch {
    return refuse(`${where}/function/arguments is not JSON`)
  }
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return refuse(`${where}/function/arguments must be a JSON object`)
  const { id, signature } = parseOpenAiToolCallId(call.id)
  return callPart({ id, name: call.function.name, args: args as Record<string, unknown>, ...(signature ? { signature } : {}) })
}

/** A tool message: its result, named by the call in the assistant message it answers. */
function toolResult(m: Message, i: number, turn: Content | undefined): ToolResultIn {
  if (!m.tool_call_id) return refuse(`body/messages/${i}/tool_call_id is required`)
  const { id } = parseOpenAiToolCallId(m.tool_call_id)
  const call = turn?.role === 'model' ? turn.parts.find((p) => p.functionCall?.id === id)?.functionCall : undefined
  if (!call) return refuse(`body/messages/${i}/tool_call_id '${id}' is not a call of the assistant message before it`)
  const text = textOf(m.content)
  let result: unknown = text
  try {
    result = JSON.parse(text)
  } catch {
    // plain text: sent as {result: text}
  }
  return { id, name: call.name, result }
}

/** Gemini 3 takes a level; earlier models a budget (Google's own mapping for its OpenAI endpoint). */
const BUDGETS = { minimal: 0, low: 1_024, medium: 8_192, high: 24_576 } as const

function thinkingOf(body: OpenAiBody): ThinkingOptions | undefined {
  const google = body.extra_body?.google?.thinking_config
  const include = body.include_reasoning ?? google?.include_thoughts
  const thinking: ThinkingOptions = {}
  if (google?.thinking_budget !== undefined) thinking.budget = google.thinking_budget
  if (google?.thinking_level) thinking.level = google.thinking_level
  const effort = body.reasoning_effort
  if (effort && thinking.budget === undefined && !thinking.level) {
    if (body.model.startsWith('gemini-3')) thinking.level = effort
    // 2.5 Pro cannot stop thinking: its least is 128.
    else thinking.budget = effort === 'minimal' && body.model.includes('pro') ? 128 : BUDGETS[effort]
  }
  if (include !== undefined) thinking.include = include
  return Object.keys(thinking).length > 0 ? thinking : undefined
}

function toolsOf(body: OpenAiBody): { tools?: ToolDeclaration[]; toolChoice?: ToolChoice } {
  const tools = body.tools?.map((t) => ({
    name: t.function.name,
    ...(t.function.description ? { description: t.function.description } : {}),
    ...(t.function.parameters ? { parameters: t.function.parameters } : {})
  }))
  const choice = body.tool_choice
  const toolChoice: ToolChoice | undefined = choice === undefined || typeof choice === 'string' ? choice : { name: choice.function.name }
  if (tools) checkTools(tools, 'body/tools')
  checkToolChoice(toolChoice, tools, 'body/tool_choice')
  return { ...(tools ? { tools } : {}), ...(toolChoice ? { toolChoice } : {}) }
}

/** The upstream request for a body; throws bad_request for what Gemini would refuse. */
export function upstreamRequest(body: OpenAiBody): { request: UpstreamRequest; userText: string } {
  const { contents, system, userText } = toContents(body.messages)
  const maxOutputTokens = body.max_completion_tokens ?? body.max_tokens
  const thinking = thinkingOf(body)
  if (thinking?.budget !== undefined && thinking.level !== undefined) refuse('set a thinking budget or a thinking level, not both')
  const request: UpstreamRequest = {
    model: body.model,
    contents,
    ...(system ? { system } : {}),
    generation: {
      ...(body.temperature === undefined ? {} : { temperature: body.temperature }),
      ...(body.top_p === undefined ? {} : { topP: body.top_p }),
      ...(maxOutputTokens === undefined ? {} : { maxOutputTokens })
    },
    ...toolsOf(body),
    ...(thinking ? { thinking } : {}),
    ...(body.parallel_tool_calls === false ? { parallelToolCalls: false } : {})
  }
  return { request, userText }
}
