// Fastify's own options, shared by the process (server.ts) and the tests.
import { randomUUID } from 'node:crypto'
import type { FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'

// Never let a secret reach a log line, whatever logs it.
export const REDACT = ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers["x-goog-api-key"]', 'apiKey', '*.apiKey', 'GEMINI_API_KEY', '*.GEMINI_API_KEY']

export function serverOptions(config: Config, logger: FastifyServerOptions['logger'] | false): FastifyServerOptions {
  return {
    logger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    // One line per chat turn is logged by the route with its outcome; the default pair per request is noise.
    disableRequestLogging: true,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    // Unknown fields are refused, not dropped; a number is not a string.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    return503OnClosing: false,
    forceCloseConnections: false
  }
}
