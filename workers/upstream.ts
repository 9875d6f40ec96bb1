// The one interface every provider's client implements (gemini.ts: AI Studio and Vertex AI;
// openai.ts: OpenAI-compatible servers), and the mapping of their failures to the same codes:
// an HTTP status, or a connection that failed.
import type { UpstreamRequest, WireError } from '../src/protocol.js'
import { wireError } from '../src/wire/error-event.js'
import { REDACTED, type Redactor } from '../src/wire/redact.js'
import type { UpstreamPiece } from './gemini-parts.js'

export type { UpstreamPiece } from './gemini-parts.js'

export interface UpstreamFailure {
  error: WireError
  /** Worth another attempt when no chunk has reached the client yet (5xx, refused or reset connection). */
  transient: boolean
  /**
   * The provider never answered (the connection was refused, reset or timed out before any response):
   * evidence about the deployment itself, whatever the request held. A status, even a 5xx, is an answer.
   */
  unreachable?: boolean
}

export interface Upstream {
  /** The reply as pieces, read to its end; a failure throws, and `classify` says what it means. */
  stream(request: UpstreamRequest, signal: AbortSignal): AsyncGenerator<UpstreamPiece>
  classify(err: unknown): UpstreamFailure
}

/** How much of the provider's own message an error event relays. */
const DETAIL_CHARS = 300

/**
 * The provider's message as a client may see it: secrets and key-shaped tokens redacted first (a
 * suspended key's 403 quotes the key), then cut to DETAIL_CHARS, never inside a `[redacted]`.
 * Every provider text that reaches an error event comes through here.
 */
export function providerDetail(message: string, redactor: Redactor): string {
  // Whatever is past the first few KB is never shown; a run of a secret cut here is still a run of it.
  const clean = redactor.redact(message.slice(0, 4 * 1024))
  if (clean.length <= DETAIL_CHARS) return clean
  const cut = clean.lastIndexOf(REDACTED, DETAIL_CHARS)
  return cut >= 0 && cut + REDACTED.length > DETAIL_CHARS ? clean.slice(0, cut) : clean.slice(0, DETAIL_CHARS)
}

/**
 * An HTTP error from any provider; `retryAfterMs` from Gemini's RetryInfo or a Retry-After header.
 * `message` is the provider's text, redacted here (providerDetail) with the worker's secrets.
 */
export function statusFailure(
  status: number,
  message: string | undefined,
  retryAfterMs: number | undefined,
  redactor: Redactor
): UpstreamFailure {
  const detail = message ? `: ${providerDetail(message, redactor)}` : ''
  if (status === 429) {
    const error = wireError(
      'upstream_rate_limited',
      `The model provider is rate limiting requests${detail}`,
      retryAfterMs === undefined ? {} : { retryAfterMs }
    )
    return { error, transient: false }
  }
  if (status === 503) return { error: wireError('upstream_unavailable', `The model provider is unavailable${detail}`), transient: true }
  if (status === 504) return { error: wireError('upstream_timeout', `The model provider timed out${detail}`), transient: true }
  return {
    error: wireError('upstream_error', `The model provider answered ${status}${detail}`, { retryable: status >= 500 }),
    transient: status >= 500
  }
}

/** A stream whose body ended without its terminator (OpenAI's `[DONE]`): the connection was cut. */
export const STREAM_CUT = 'GW_STREAM_CUT'

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  STREAM_CUT
])

/** Errors thrown before the provider sent any response (see `unanswered`). */
const NO_ANSWER = new WeakSet<object>()

/** Rethrows a failure of the request itself, before any response, marked so: `.catch(unanswered)` on the call. */
export function unanswered(err: unknown): never {
  if (typeof err === 'object' && err !== null) NO_ANSWER.add(err)
  throw err
}

/** Anything else: a connection that failed or was cut (transient), or a response that could not be read. */
export function transportFailure(err: unknown): UpstreamFailure {
  // undici.request fails with the socket's code; the SDK's fetch (UPSTREAM_READER=sdk) wraps it in a TypeError.
  const failed = (err ?? {}) as { code?: string; cause?: { code?: string } }
  const code = failed.code ?? failed.cause?.code ?? ''
  if (CONNECTION_CODES.has(code) || (err instanceof TypeError && (err.message === 'terminated' || err.message === 'fetch failed'))) {
    // A body cut mid-way ('terminated', a socket error while reading) had an answer: it may be the request's doing.
    const unreachable = (typeof err === 'object' && err !== null && NO_ANSWER.has(err)) || (err as Error).message === 'fetch failed'
    return {
      error: wireError('upstream_unavailable', `Connection to the model provider failed (${code || (err as Error).message}).`),
      transient: true,
      ...(unreachable ? { unreachable } : {})
    }
  }
  return { error: wireError('upstream_error', 'The model provider sent a response the gateway could not read.'), transient: false }
}

/** Finish reasons that mean the model refused, not that it finished (an OpenAI `content_filter` arrives as SAFETY). */
export const SAFETY_FINISH = new Set([
  'SAFETY',
  'RECITATION',
  'BLOCKLIST',
  'PROHIBITED_CONTENT',
  'SPII',
  'IMAGE_SAFETY',
  'IMAGE_PROHIBITED_CONTENT',
  'IMAGE_RECITATION',
  // Vertex's Model Armor filter (recorded as a finishReason, though not in the SDK's enum).
  'MODEL_ARMOR'
])
