// The subset of a Gemini generateContent request body the simulator reads, and the checks the real
// service makes on it that the gateway must live with (thinking settings, Gemini 3's thought signatures).

export type JsonObject = Record<string, unknown>

export interface Turn {
  role: string
  texts: string[]
  /** Every part as sent, for the reply seed and the signature rule. */
  parts: JsonObject[]
}

export interface ToolDeclaration {
  name: string
  /** `parametersJsonSchema`, or the OpenAPI-style `parameters`; undefined for a function without arguments. */
  schema: unknown
}

export interface GenerateRequest {
  turns: Turn[]
  systemTexts: string[]
  maxOutputTokens: number | undefined
  tools: ToolDeclaration[]
  /** functionCallingConfig.mode: AUTO unless the request says otherwise. */
  toolMode: 'AUTO' | 'ANY' | 'NONE'
  allowedTools: string[] | undefined
  includeThoughts: boolean
  /** thinkingConfig.thinkingBudget; 0 turns thinking off. */
  thinkingBudget: number | undefined
}

export const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value)

function partTexts(parts: unknown[]): string[] {
  const texts: string[] = []
  for (const part of parts) {
    if (isObject(part) && typeof part.text === 'string' && part.thought !== true) texts.push(part.text)
  }
  return texts
}

// The SDK always sends a Content object; a bare string is accepted for hand-written requests.
function systemTexts(value: unknown): string[] {
  if (typeof value === 'string') return [value]
  if (isObject(value) && Array.isArray(value.parts)) return partTexts(value.parts)
  return []
}

function maxOutputTokens(config: JsonObject): number | undefined {
  const max = config.maxOutputTokens
  return typeof max === 'number' && Number.isInteger(max) && max > 0 ? max : undefined
}

function toolDeclarations(tools: unknown): ToolDeclaration[] | string {
  if (tools === undefined) return []
  if (!Array.isArray(tools)) return 'Invalid JSON payload received. Unknown name "tools": Proto field is not repeating, cannot start list.'
  const declarations: ToolDeclaration[] = []
  for (const [t, tool] of tools.entries()) {
    if (!isObject(tool) || !Array.isArray(tool.functionDeclarations)) continue
    for (const [f, declaration] of tool.functionDeclarations.entries()) {
      const name = isObject(declaration) ? declaration.name : undefined
      if (typeof name !== 'string' || name === '') {
        return `* GenerateContentRequest.tools[${t}].function_declarations[${f}].name: Name cannot be empty.`
      }
      declarations.push({ name, schema: (declaration as JsonObject).parametersJsonSchema ?? (declaration as JsonObject).parameters })
    }
  }
  return declarations
}

const TOOL_MODES = new Set(['AUTO', 'ANY', 'NONE'])

/** The request in a parsed body, or the message of a 400 INVALID_ARGUMENT. */
export function parseGenerateRequest(json: unknown): GenerateRequest | string {
  if (!isObject(json)) return 'Invalid JSON payload received. Expected an object.'
  const { contents } = json
  if (!Array.isArray(contents) || contents.length === 0) {
    return '* GenerateContentRequest.contents: contents is not specified'
  }
  const turns: Turn[] = []
  for (const content of contents) {
    if (!isObject(content) || !Array.isArray(content.parts) || content.parts.length === 0) {
      return '* GenerateContentRequest.contents[].parts: contents.parts must not be empty.'
    }
    const parts = content.parts.filter(isObject)
    turns.push({ role: typeof content.role === 'string' ? content.role : 'user', texts: partTexts(parts), parts })
  }
  const tools = toolDeclarations(json.tools)
  if (typeof tools === 'string') return tools
  const generation = isObject(json.generationConfig) ? json.generationConfig : {}
  const thinking = isObject(generation.thinkingConfig) ? generation.thinkingConfig : {}
  if (thinking.thinkingBudget !== undefined && thinking.thinkingLevel !== undefined) {
    return 'You can only set only one of thinking budget and thinking level.'
  }
  const calling = isObject(json.toolConfig) && isObject(json.toolConfig.functionCallingConfig) ? json.toolConfig.functionCallingConfig : {}
  const mode = typeof calling.mode === 'string' && TOOL_MODES.has(calling.mode) ? (calling.mode as GenerateRequest['toolMode']) : 'AUTO'
  const allowed = Array.isArray(calling.allowedFunctionNames)
    ? calling.allowedFunctionNames.filter((n) => typeof n === 'string')
    : undefined
  return {
    turns,
    systemTexts: systemTexts(json.systemInstruction),
    maxOutputTokens: maxOutputTokens(generation),
    tools,
    toolMode: mode,
    allowedTools: allowed,
    includeThoughts: thinking.includeThoughts === true,
    thinkingBudget: typeof thinking.thinkingBudget === 'number' ? thinking.thinkingBudget : undefined
  }
}

/** Whether the conversation's last turn answers function calls (then the model replies with text). */
export const answersCalls = (request: GenerateRequest): boolean =>
  request.turns.at(-1)?.parts.some((p) => isObject(p.functionResponse)) ?? false

/** Text of the last user turn that has text: the only place directives are read from. */
export function lastUserText(request: GenerateRequest): string {
  return request.turns.findLast((turn) => turn.role !== 'model' && turn.texts.length > 0)?.texts.join('\n') ?? ''
}

/**
 * Gemini 3's rule, as its documentation states it: in the current turn (everything after the last
 * user message with text), the first functionCall part of each model step must carry its
 * thoughtSignature. Earlier turns are not checked. Only presence is checked here: the real service
 * also rejects a signature it did not issue (Google's `skip_thought_signature_validator` sentinel
 * aside). Returns the 400 message, or undefined.
 */
export function missingSignature(request: GenerateRequest): string | undefined {
  const start = request.turns.findLastIndex((turn) => turn.role !== 'model' && turn.texts.length > 0)
  for (let i = start + 1; i < request.turns.length; i++) {
    const turn = request.turns[i]
    if (turn?.role !== 'model') continue
    const first = turn.parts.find((p) => isObject(p.functionCall))
    if (!first) continue
    const signature = first.thoughtSignature
    if (typeof signature === 'string' && signature.length > 0) continue
    const name = isObject(first.functionCall) && typeof first.functionCall.name === 'string' ? first.functionCall.name : ''
    return (
      'Function call is missing a thought_signature in functionCall parts. This is required for tools to work correctly, and missing ' +
      `thought_signature may lead to degraded model performance. Additional data, function call \`default_api:${name}\` , position ${i + 1}. ` +
      'Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.'
    )
  }
  return undefined
}

function countWords(text: string): number {
  let words = 0
  let inWord = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    const space = c === 32 || (c >= 9 && c <= 13)
    if (!space && !inWord) words++
    inWord = !space
  }
  return words
}

/** Whitespace-separated words of every turn and the system instruction (function parts count by their JSON). */
export function promptTokenCount(request: GenerateRequest): number {
  let count = 0
  for (const text of request.systemTexts) count += countWords(text)
  for (const turn of request.turns) {
    for (const text of turn.texts) count += countWords(text)
    for (const part of turn.parts) {
      if (part.functionCall !== undefined || part.functionResponse !== undefined) count += Math.ceil(JSON.stringify(part).length / 8)
    }
  }
  return count
}
