// The one registry of error codes. Codes are a public contract: add, never rename.
// `status` is the HTTP status when the error refuses a request before its stream starts;
// once a stream has started the same code travels as an `error` event instead.
export const errorCodes = {
  bad_request: { status: 400, retryable: false, message: 'The request is not valid.' },
  unsupported_media_type: { status: 415, retryable: false, message: 'Send the body as application/json.' },
  unauthorized: { status: 401, retryable: false, message: 'A valid API key is required.' },
  not_found: { status: 404, retryable: false, message: 'No such route.' },
  payload_too_large: { status: 413, retryable: false, message: 'The request body is too large.' },
  request_timeout: { status: 408, retryable: true, message: 'The request was not received in time.' },
  headers_too_large: { status: 431, retryable: false, message: 'The request headers are too large.' },
  expectation_failed: { status: 417, retryable: false, message: 'Only Expect: 100-continue is supported.' },
  rate_limited: { status: 429, retryable: true, message: 'Too many requests; retry later.' },
  overloaded: { status: 503, retryable: true, message: 'The gateway is at capacity; retry later.' },
  session_busy: { status: 409, retryable: true, message: 'This session already has a turn in progress.' },
  session_not_found: { status: 404, retryable: false, message: 'No such session (it may have expired).' },
  store_unavailable: { status: 503, retryable: true, message: 'The session store is unavailable; retry shortly, or send history.' },
  upstream_rate_limited: { status: 429, retryable: true, message: 'The model provider is rate limiting requests.' },
  upstream_unavailable: { status: 503, retryable: true, message: 'The model provider is unavailable.' },
  upstream_error: { status: 502, retryable: false, message: 'The model provider returned an error.' },
  upstream_timeout: { status: 504, retryable: true, message: 'The model provider did not answer in time.' },
  safety_blocked: { status: 400, retryable: false, message: 'The model declined to answer for safety reasons.' },
  worker_crashed: { status: 500, retryable: true, message: 'The worker serving this stream crashed.' },
  worker_stalled: { status: 500, retryable: true, message: 'The worker serving this stream stopped responding.' },
  worker_out_of_memory: { status: 500, retryable: true, message: 'The worker serving this stream ran out of memory.' },
  client_too_slow: { status: 500, retryable: true, message: 'The client read the stream too slowly.' },
  stream_timeout: { status: 504, retryable: true, message: 'The stream exceeded its time limit.' },
  stream_not_found: { status: 404, retryable: false, message: 'No such stream, or its events have expired.' },
  stream_lost: {
    status: 502,
    retryable: true,
    message: 'The replica producing this stream stopped; the events it produced were replayed.'
  },
  client_disconnected: {
    status: 499,
    retryable: true,
    message: 'The client left and the stream was cancelled; the events produced until then were replayed.'
  },
  shutting_down: { status: 503, retryable: true, message: 'The gateway is shutting down; retry on another replica.' },
  internal_error: { status: 500, retryable: true, message: 'Internal error.' }
} as const satisfies Record<string, { status: number; retryable: boolean; message: string }>

export type ErrorCode = keyof typeof errorCodes

/** Retry-After, in seconds, on a refusal that a moment's wait cures (draining, full, a busy store). */
export const RETRY_AFTER_S = 1

/** An error refused at the edge: becomes `{"error":{"code","message"}}` with the code's status. */
export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly retryAfterS: number | undefined
  constructor(code: ErrorCode, message: string = errorCodes[code].message, retryAfterS?: number) {
    super(message)
    this.code = code
    this.statusCode = errorCodes[code].status
    this.retryAfterS = retryAfterS
  }
}
