// Every refusal carries a registry code and its status, in the body shape of the route's dialect:
// `{"error":{"code","message"}}`, or OpenAI's `{"error":{"message","type","code"}}` under /v1/.
// Nothing internal (stack, class, file) ever reaches a client. That holds for the refusals Fastify
// and Node's HTTP parser make before any route runs too: a bad %-escape (frameworkErrors), and a
// malformed request, oversized headers or a body that never finished (clientErrorHandler).
import type { Socket } from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import { GatewayError, errorCodes, type ErrorCode } from './errors.js'
import { openAiError } from './wire/openai-events.js'

const gatewayError = (code: ErrorCode, message: string) => ({ error: { code, message } })

/**
 * The path as the router reads it: the route that matched, else the target with an absolute-form
 * origin dropped and %XX decoded, so that `/%76%31/x` answers in the dialect of `/v1/x`.
 */
export function routerPath(request: Pick<FastifyRequest, 'url' | 'routeOptions'>): string {
  return request.routeOptions.url ?? decodedPath(request.url)
}

function decodedPath(target: string): string {
  const path = (target.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '').split('?', 1)[0] ?? '') || '/'
  try {
    return decodeURIComponent(path)
  } catch {
    return path
  }
}

/** A path as a message may quote it: control characters (C0, DEL, C1) and line separators shown as `?`. */
// eslint-disable-next-line no-control-regex -- control characters are what it replaces
const printable = (path: string) => path.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?')

const bodyForPath = (path: string) => (path.startsWith('/v1/') ? openAiError : gatewayError)

// Fastify's own errors that are the client's fault.
const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'bad_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'bad_request',
  FST_ERR_VALIDATION: 'bad_request',
  FST_ERR_BAD_URL: 'bad_request',
  FST_ERR_MAX_PARAM_LENGTH: 'bad_request'
}

function refuse(request: FastifyRequest, reply: FastifyReply, code: ErrorCode, message: string) {
  request.outcome = code
  return reply.status(errorCodes[code].status).send(bodyForPath(routerPath(request))(code, message))
}

export function installErrorHandler(fastify: FastifyInstance, onRefused: (code: ErrorCode) => void): void {
  fastify.setErrorHandler((err: FastifyError | GatewayError, request, reply) => {
    let code: ErrorCode
    let message: string
    const fastifyCode = fastifyCodes[err.code]
    if (err instanceof GatewayError) {
      code = err.code
      message = err.message
      if (err.retryAfterS !== undefined) void reply.header('retry-after', String(err.retryAfterS))
    } else if (err.validation) {
      code = 'bad_request'
      message = describeValidation(err)
    } else if (fastifyCode) {
      code = fastifyCode
      message = code === 'bad_request' ? err.message : errorCodes[code].message
    } else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
      code = 'bad_request'
      message = err.message
    } else {
      request.log.error({ err }, 'unhandled error')
      code = 'internal_error'
      message = errorCodes.internal_error.message
    }
    onRefused(code)
    return refuse(request, reply, code, message)
  })

  fastify.server.on('checkExpectation', refuseExpectation)
  fastify.setNotFoundHandler((request, reply) =>
    refuse(request, reply, 'not_found', `No route ${request.method} ${printable(decodedPath(request.url)).slice(0, 200)}.`)
  )
}

/**
 * Node answers an `Expect` other than 100-continue with a bare 417 before any route runs, unless the
 * server listens for it: the same refusal, in the registry's shape and the target's dialect.
 */
export function refuseExpectation(request: IncomingMessage, response: ServerResponse): void {
  const code = 'expectation_failed'
  const body = JSON.stringify(bodyForPath(decodedPath(request.url ?? '/'))(code, errorCodes[code].message))
  response.writeHead(errorCodes[code].status, { 'content-type': 'application/json; charset=utf-8', connection: 'close' }).end(body)
}

/** Fastify's refusals before routing (a bad %-escape, a route parameter over maxParamLength). */
export const frameworkErrors: NonNullable<FastifyServerOptions['frameworkErrors']> = (err, request, reply) => {
  void refuse(request, reply, fastifyCodes[err.code] ?? 'bad_request', 'The request target is not a valid URL.')
}

/**
 * Refusals of Node's HTTP parser, which no route sees: written on the socket as the HTTP server
 * itself would, in the registry's shape (OpenAI's when the request line names /v1/), then closed.
 */
export function clientErrorHandler(error: Error, socket: Socket): void {
  // Node's parser errors carry the bytes it read (Fastify's type for them is off).
  const err = error as NodeJS.ErrnoException & { rawPacket?: Buffer }
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const code: ErrorCode =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'bad_request'
  // As Node does: answer only when nothing of an in-flight response was written yet.
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage
  if (socket.writable && !inFlight?.headersSent) {
    const target = inFlight?.req.url ?? requestTarget(err.rawPacket)
    const body = JSON.stringify(bodyForPath(decodedPath(target))(code, errorCodes[code].message))
    socket.write(
      `HTTP/1.1 ${errorCodes[code].status} ${code}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
    )
  }
  socket.destroy()
}

/** The target of the request line, when the parser got that far. */
function requestTarget(raw: Buffer | undefined): string {
  const line = raw?.subarray(0, 8_192).toString('latin1').split('\r\n', 1)[0] ?? ''
  return line.split(' ')[1] ?? '/'
}

/** "body/message must NOT have more than 32000 characters", naming an unknown field when that is the fault. */
function describeValidation(err: FastifyError): string {
  const first = err.validation?.[0]
  if (!first) return err.message
  const where = `${err.validationContext ?? 'body'}${first.instancePath}`
  const extra = (first.params as { additionalProperty?: string }).additionalProperty
  if (extra !== undefined) return `${where} has an unknown field '${extra}'`
  const allowed = (first.params as { allowedValues?: unknown[] }).allowedValues
  return `${where} ${first.message ?? 'is invalid'}${allowed ? `: ${allowed.join(', ')}` : ''}`
}
