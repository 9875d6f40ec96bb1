// An `error` event's payload, from the registry: what the worker and the front send when a turn fails.
import { errorCodes, type ErrorCode } from '../errors.js'
import type { WireError } from '../protocol.js'

/** The registry's message and retryability unless given (an upstream 5xx is retryable where other upstream_errors are not). */
export function wireError(code: ErrorCode, message?: string, extra: { retryAfterMs?: number; retryable?: boolean } = {}): WireError {
  const err: WireError = { code, message: message ?? errorCodes[code].message, retryable: extra.retryable ?? errorCodes[code].retryable }
  if (extra.retryAfterMs !== undefined) err.retryAfterMs = extra.retryAfterMs
  return err
}
