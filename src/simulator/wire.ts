// Byte-level shapes of what Gemini sends: SSE events and JSON error bodies.

const STATUS = new Map<number, [status: string, message: string]>([
  [400, ['INVALID_ARGUMENT', 'Request contains an invalid argument.']],
  [
    403,
    [
      'PERMISSION_DENIED',
      "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API."
    ]
  ],
  [404, ['NOT_FOUND', 'Requested entity was not found.']],
  [
    429,
    [
      'RESOURCE_EXHAUSTED',
      'You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.'
    ]
  ],
  [
    500,
    ['INTERNAL', 'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting']
  ],
  [503, ['UNAVAILABLE', 'The model is overloaded. Please try again later.']],
  [504, ['DEADLINE_EXCEEDED', 'Deadline expired before operation could complete.']]
])

/** google.protobuf.Duration in JSON: whole seconds as "26s", otherwise 3 fractional digits ("1.500s"). */
function formatRetryDelay(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(3)}s`
}

function quotaDetails(model: string, retryDelayMs: number): unknown[] {
  return [
    {
      '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
      violations: [
        {
          quotaMetric: 'generativelanguage.googleapis.com/generate_content_free_tier_requests',
          quotaId: 'GenerateRequestsPerMinutePerProjectPerModel-FreeTier',
          quotaDimensions: { location: 'global', model },
          quotaValue: '10'
        }
      ]
    },
    {
      '@type': 'type.googleapis.com/google.rpc.Help',
      links: [{ description: 'Learn more about Gemini API quotas', url: 'https://ai.google.dev/gemini-api/docs/rate-limits' }]
    },
    { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: formatRetryDelay(retryDelayMs) }
  ]
}

/** `{"error":{code,message,status[,details]}}`; a 429 carries QuotaFailure, Help and RetryInfo like the real service. */
export function errorBody(code: number, options: { message?: string; model?: string; retryDelayMs?: number } = {}): string {
  const [status, defaultMessage] = STATUS.get(code) ?? ['UNKNOWN', 'Unknown error.']
  let message = options.message ?? defaultMessage
  if (code !== 429 || options.retryDelayMs === undefined) return JSON.stringify({ error: { code, message, status } })
  message += ` Please retry in ${options.retryDelayMs / 1000}s.`
  const details = quotaDetails(options.model ?? '', options.retryDelayMs)
  return JSON.stringify({ error: { code, message, status, details } })
}

export const sseEvent = (json: string): string => `data: ${json}\r\n\r\n`

export type FinishReason = 'STOP' | 'MAX_TOKENS'

/** Builds the SSE events of one stream; the per-chunk work is a few string concatenations. */
export class ChunkEncoder {
  readonly #tail: string
  readonly #promptTokens: number
  /** Thought tokens so far: they grow while the model thinks, then stay in every later chunk's usage. */
  thoughtTokens = 0

  constructor(model: string, responseId: string, promptTokens: number) {
    this.#promptTokens = promptTokens
    this.#tail = `,"modelVersion":${JSON.stringify(model)},"responseId":${JSON.stringify(responseId)}}\r\n\r\n`
  }

  /** Gemini leaves candidatesTokenCount out until the answer starts, and thoughtsTokenCount out without thinking. */
  #usage(candidatesTokens: number | undefined): string {
    const p = this.#promptTokens
    const t = this.thoughtTokens
    const candidates = candidatesTokens === undefined ? '' : `"candidatesTokenCount":${candidatesTokens},`
    const thoughts = t > 0 ? `,"thoughtsTokenCount":${t}` : ''
    return `"usageMetadata":{"promptTokenCount":${p},${candidates}"totalTokenCount":${p + (candidatesTokens ?? 0) + t}${thoughts}}`
  }

  /** One candidate with `parts` (a JSON array, already encoded); `candidatesTokens` is cumulative. */
  parts(parts: string, candidatesTokens: number | undefined, finishReason?: FinishReason, finishMessage?: string): string {
    const finish = finishReason ? `,"finishReason":"${finishReason}"` : ''
    const message = finishMessage ? `,"finishMessage":${JSON.stringify(finishMessage)}` : ''
    return `data: {"candidates":[{"content":{"parts":${parts},"role":"model"}${finish}${message},"index":0}],${this.#usage(candidatesTokens)}${this.#tail}`
  }

  /** A text chunk; `candidatesTokens` is cumulative. */
  text(text: string, candidatesTokens: number, finishReason?: FinishReason): string {
    return this.parts(`[{"text":${JSON.stringify(text)}}]`, candidatesTokens, finishReason)
  }

  /** A thought summary chunk (`thought: true`), before any answer token. */
  thought(text: string): string {
    return this.parts(`[{"text":${JSON.stringify(text)},"thought":true}]`, undefined)
  }

  /** The last chunk of a reply stopped by the output safety filter: no content. */
  safety(candidatesTokens: number): string {
    return `data: {"candidates":[{"finishReason":"SAFETY","index":0,"safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH","blocked":true}]}],${this.#usage(candidatesTokens)}${this.#tail}`
  }

  /** The only event of a blocked prompt: feedback and no candidates. */
  blocked(): string {
    const p = this.#promptTokens
    return `data: {"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH","blocked":true}]},"usageMetadata":{"promptTokenCount":${p},"totalTokenCount":${p}}${this.#tail}`
  }
}

/**
 * The reply of `generateContent` (unary): the stream's events merged as the service would have
 * answered at once: every part in order, runs of plain text joined, the last finishReason and
 * usage. A stream that would have failed is its error (500).
 */
export function unaryResponse(events: string[]): { status: number; body: string } {
  const parts: Array<Record<string, unknown>> = []
  let merged: Record<string, unknown> = {}
  for (const event of events) {
    const chunk = JSON.parse(event.slice('data: '.length)) as Record<string, unknown> & {
      error?: unknown
      candidates?: Array<{ content?: { parts?: Array<Record<string, unknown>> }; finishReason?: string }>
    }
    if (chunk.error) return { status: 500, body: errorBody(500) }
    const { candidates, ...rest } = chunk
    merged = { ...merged, ...rest }
    const candidate = candidates?.[0]
    for (const part of candidate?.content?.parts ?? []) {
      const previous = parts.at(-1)
      const plain = (p: Record<string, unknown>) => typeof p.text === 'string' && Object.keys(p).length === 1
      if (previous && plain(previous) && plain(part)) previous.text = String(previous.text) + String(part.text)
      else parts.push({ ...part })
    }
    if (candidate?.finishReason) merged.finishReason = candidate.finishReason
  }
  const { finishReason, ...response } = merged
  const candidates = events.some((e) => e.includes('"candidates"'))
    ? [{ content: { parts, role: 'model' }, ...(finishReason ? { finishReason } : {}), index: 0 }]
    : undefined
  return { status: 200, body: JSON.stringify({ ...(candidates ? { candidates } : {}), ...response }) }
}
