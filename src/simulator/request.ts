// The subset of a Gemini generateContent request body the simulator reads.

export interface Turn {
  role: string
  texts: string[]
}

export interface GenerateRequest {
  turns: Turn[]
  systemTexts: string[]
  maxOutputTokens: number | undefined
}

type JsonObject = Record<string, unknown>

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value)

function partTexts(parts: unknown[]): string[] {
  const texts: string[] = []
  for (const part of parts) {
    if (isObject(part) && typeof part.text === 'string') texts.push(part.text)
  }
  return texts
}

// The SDK always sends a Content object; a bare string is accepted for hand-written requests.
function systemTexts(value: unknown): string[] {
  if (typeof value === 'string') return [value]
  if (isObject(value) && Array.isArray(value.parts)) return partTexts(value.parts)
  return []
}

function maxOutputTokens(config: unknown): number | undefined {
  if (!isObject(config)) return undefined
  const max = config.maxOutputTokens
  return typeof max === 'number' && Number.isInteger(max) && max > 0 ? max : undefined
}

/** The parsed request, or the message of a 400 INVALID_ARGUMENT. */
export function parseGenerateRequest(body: string): GenerateRequest | string {
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    return 'Invalid JSON payload received. Unexpected token.'
  }
  if (!isObject(json)) return 'Invalid JSON payload received. Expected an object.'
  const { contents } = json
  if (!Array.isArray(contents) || contents.length === 0) {
    return '* GenerateContentRequest.contents: contents is not specified'
  }
  const turns: Turn[] = []
  for (const content of contents) {
    if (!isObject(content) || !Array.isArray(content.parts)) {
      return '* GenerateContentRequest.contents[].parts: contents.parts must not be empty.'
    }
    turns.push({ role: typeof content.role === 'string' ? content.role : 'user', texts: partTexts(content.parts) })
  }
  return {
    turns,
    systemTexts: systemTexts(json.systemInstruction),
    maxOutputTokens: maxOutputTokens(json.generationConfig)
  }
}

/** Text of the last non-model turn: the only place directives are read from. */
export function lastUserText(request: GenerateRequest): string {
  return request.turns.findLast((turn) => turn.role !== 'model')?.texts.join('\n') ?? ''
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

/** Whitespace-separated words of every turn and the system instruction. */
export function promptTokenCount(request: GenerateRequest): number {
  let count = 0
  for (const text of request.systemTexts) count += countWords(text)
  for (const turn of request.turns) for (const text of turn.texts) count += countWords(text)
  return count
}
