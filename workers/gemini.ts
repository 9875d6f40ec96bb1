// The only importer of @google/genai: one client per worker, a stream of plain text pieces,
// and the mapping of every upstream failure to a wire error.
import { ApiError, GoogleGenAI, type GenerateContentResponse } from '@google/genai'
import type { Turn, UpstreamRequest, Usage, WireError } from '../src/protocol.js'

export interface UpstreamPiece {
  text: string
  /** Only on the last piece of a stream. */
  finishReason?: string
  usage?: Usage
  blockReason?: string
}

export type UpstreamStream = (request: UpstreamRequest, signal: AbortSignal) => AsyncGenerator<UpstreamPiece>

export function createUpstream(apiKey: string, baseUrl: string | undefined): UpstreamStream {
  // apiVersion is pinned: 2.x defaults to v1beta today, 3.x moved to v1, and the wire format is v1beta's.
  const ai = new GoogleGenAI({ apiKey, httpOptions: { apiVersion: 'v1beta', ...(baseUrl ? { baseUrl } : {}) } })
  return async function * stream (request, signal) {
    const responses = await ai.models.generateContentStream({
      model: request.model,
      contents: request.turns.map(toContent),
      // The whole config every call: the SDK never merges a per-call config with an earlier one.
      config: { ...request.generation, ...(request.system ? { systemInstruction: request.system } : {}), abortSignal: signal }
    })
    for await (const response of responses) yield toPiece(response)
  }
}

const toContent = (turn: Turn) => ({ role: turn.role, parts: [{ text: turn.text }] })

function toPiece(response: GenerateContentResponse): UpstreamPiece {
  const candidate = response.candidates?.[0]
  let text = ''
  // Not `response.text`: it walks every part and warns on non-text parts, per chunk.
  for (const part of candidate?.content?.parts ?? []) if (typeof part.text === 'string' && part.thought !== true) text += part.text
  const piece: UpstreamPiece = { text }
  const meta = response.usageMetadata
  if (meta) {
    const promptTokens = meta.promptTokenCount ?? 0
    const outputTokens = meta.candidatesTokenCount ?? 0
    piece.usage = { promptTokens, outputTokens, totalTokens: meta.totalTokenCount ?? promptTokens + outputTokens }
  }
  if (candidate?.finishReason) piece.finishReason = candidate.finishReason
  if (response.promptFeedback?.blockReason) piece.blockReason = response.promptFeedback.blockReason
  return piece
}

/** Finish reasons that mean the model refused, not that it finished. */
export const SAFETY_FINISH = new Set(['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII', 'IMAGE_SAFETY'])

export interface UpstreamFailure {
  error: WireError
  /** Worth another attempt when no chunk has reached the client yet (5xx, refused or reset connection). */
  transient: boolean
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT'])

export function classifyUpstreamError(err: unknown): UpstreamFailure {
  if (err instanceof ApiError) return classifyStatus(err.status, err.message)
  const cause = (err as { cause?: { code?: string } })?.cause
  if (err instanceof TypeError && (err.message === 'terminated' || err.message === 'fetch failed' || CONNECTION_CODES.has(cause?.code ?? ''))) {
    return { error: { code: 'upstream_unavailable', message: `Connection to the model provider failed (${cause?.code ?? err.message}).`, retryable: true }, transient: true }
  }
  return { error: { code: 'upstream_error', message: 'The model provider sent a response the gateway could not read.', retryable: false }, transient: false }
}

function classifyStatus(status: number, body: string): UpstreamFailure {
  const parsed = parseErrorBody(body)
  const detail = parsed?.message ? `: ${parsed.message.slice(0, 300)}` : ''
  if (status === 429) {
    const error: WireError = { code: 'upstream_rate_limited', message: `The model provider is rate limiting requests${detail}`, retryable: true }
    const retryAfterMs = parsed?.retryAfterMs
    if (retryAfterMs !== undefined) error.retryAfterMs = retryAfterMs
    return { error, transient: false }
  }
  if (status === 503) return { error: { code: 'upstream_unavailable', message: `The model provider is unavailable${detail}`, retryable: true }, transient: true }
  if (status === 504) return { error: { code: 'upstream_timeout', message: `The model provider timed out${detail}`, retryable: true }, transient: true }
  return {
    error: { code: 'upstream_error', message: `The model provider answered ${status}${detail}`, retryable: status >= 500 },
    transient: status >= 500
  }
}

interface ErrorBody { error?: { message?: string; details?: Array<{ '@type'?: string; retryDelay?: string }> } }

/** ApiError.message holds the JSON error body; RetryInfo's retryDelay is a protobuf Duration ("26s", "1.5s"). */
function parseErrorBody(body: string): { message?: string; retryAfterMs?: number } | undefined {
  let parsed: ErrorBody
  try { parsed = JSON.parse(body) as ErrorBody } catch { return undefined }
  const delay = parsed.error?.details?.find((d) => d['@type']?.endsWith('google.rpc.RetryInfo'))?.retryDelay
  const seconds = delay ? Number.parseFloat(delay) : Number.NaN
  return {
    ...(parsed.error?.message ? { message: parsed.error.message } : {}),
    ...(Number.isFinite(seconds) ? { retryAfterMs: Math.round(seconds * 1000) } : {})
  }
}
