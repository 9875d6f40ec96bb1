// Fastify's own options, shared by the process (server.ts) and the tests.
import { randomUUID } from 'node:crypto'
import type { Writable } from 'node:stream'
import { LogController, type FastifyLoggerOptions, type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'

// Never let a secret reach a log line, whatever logs it.
const REDACT = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-goog-api-key"]',
  'apiKey',
  '*.apiKey',
  'GEMINI_API_KEY',
  '*.GEMINI_API_KEY'
]

/** pino options: JSON lines, secrets redacted; readable lines only for a human at a terminal. */
export function loggerOptions(config: Config, stream?: Writable): FastifyLoggerOptions & Record<string, unknown> {
  const base = { level: config.LOG_LEVEL, redact: { paths: REDACT, censor: '[redacted]' } }
  if (stream) return { ...base, stream }
  return process.stdout.isTTY ? { ...base, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : base
}

export function serverOptions(config: Config, logger: FastifyServerOptions['logger'] | false): FastifyServerOptions {
  return {
    logger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    // One line per request, written by the app with its outcome (app.ts), instead of Fastify's pair.
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    // Unknown fields are refused, not dropped; a number is not a string.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    // A hop count is accepted at run time (proxy-addr) though Fastify's types omit it.
    trustProxy: config.trustProxy as FastifyServerOptions['trustProxy'],
    return503OnClosing: false,
    forceCloseConnections: false
  }
}
