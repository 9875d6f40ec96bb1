// Every refusal carries a registry code and its status, in the body shape of the route's dialect:
// `{"error":{"code","message"}}`, or OpenAI's `{"error":{"message","type","code"}}` under /v1/.
// Nothing internal (stack, class, file) ever reaches a client.
import type { FastifyError, FastifyInstance, FastifyRequest } from 'fastify'
import { GatewayError, errorCodes, type ErrorCode } from './errors.js'
import { openAiError } from './wire/openai-events.js'

const gatewayError = (code: ErrorCode, message: string) => ({ error: { code, message } })
const bodyFor = (request: FastifyRequest) => (request.url.startsWith('/v1/') ? openAiError : gatewayError)

// Fastify's own errors that are the client's fault.
const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'bad_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'bad_request',
  FST_ERR_VALIDATION: 'bad_request'
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
    request.outcome = code
    return reply.status(errorCodes[code].status).send(bodyFor(request)(code, message))
  })

  fastify.setNotFoundHandler((request, reply) => {
    request.outcome = 'not_found'
    return reply.status(404).send(bodyFor(request)('not_found', `No route ${request.method} ${request.url.split('?')[0]}.`))
  })
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
