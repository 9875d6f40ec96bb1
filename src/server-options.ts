// Fastify's own options, shared by the process (server.ts) and the tests.
import { randomUUID } from 'node:crypto'
import type { Writable } from 'node:stream'
import type { Server } from 'node:http'
import { LogController, type FastifyHttpOptions, type FastifyLoggerOptions, type FastifyServerOptions } from 'fastify'
import type { Config } from './config.js'
import { clientErrorHandler, frameworkErrors } from './error-handler.js'

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

export function serverOptions(config: Config, logger: FastifyServerOptions['logger'] | false): FastifyHttpOptions<Server> {
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
    // A body must arrive whole within this, so slow uploads cannot hold sockets (and descriptors) for ever.
    // It ends with the request: a stream's response may last STREAM_MAX_MS.
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    http: {
      // Node 20 enforces only the value the server was created with (Fastify sets it afterwards too).
      requestTimeout: config.REQUEST_TIMEOUT_MS,
      // Node checks the deadline every 30 s by default; a quarter of it keeps a timeout near its value.
      connectionsCheckingInterval: Math.min(30_000, Math.ceil(config.REQUEST_TIMEOUT_MS / 4))
    },
    // Refusals made before any route runs, in the registry's shape too.
    frameworkErrors,
    clientErrorHandler,
    // Route parameters are checked by their schemas (a stream id is up to 128 characters), not cut at 100.
    routerOptions: { maxParamLength: 256 },
    return503OnClosing: false,
    forceCloseConnections: false
  }
}
