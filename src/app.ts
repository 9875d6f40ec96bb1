// The service as a Fastify plugin: the process (server.ts) and the tests register it the same way.
//
//   POST /api/chat ──────────┐
//   POST /v1/chat/completions ┴▶ chat/admission.ts ─▶ chat/turn.ts ─▶ chat/dispatch.ts ─▶ pool/runner.ts ─▶ workers/chat.worker.ts
//                                                                                                          └▶ workers/gemini.ts ─▶ Gemini
//   client ◀── chat/sinks.ts (SSE: chat/sse-writer.ts, or one JSON body) ◀── MessagePort ◀──────────────────────┘
import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import type { Config } from './config.js'
import { installErrorHandler } from './error-handler.js'
import { installJsonParser } from './json-body.js'
import { Dispatcher } from './chat/dispatch.js'
import { Heartbeats } from './chat/sse-writer.js'
import { Lifecycle } from './lifecycle.js'
import { createMetrics, type Metrics } from './metrics.js'
import { createRunner, type TaskRunner } from './pool/runner.js'
import { Watchdog } from './pool/watchdog.js'
import { MemorySessionStore } from './sessions/memory-store.js'
import { RedisSessionStore, SESSION_LEASE_MS } from './sessions/redis-store.js'
import { sessionBytesBound } from './sessions/store.js'
import { MemoryStreamLog } from './resume/memory-log.js'
import { RedisStreamLog } from './resume/redis-log.js'
import { SharedStreamLog } from './resume/shared-log.js'
import { QuotaGate } from './quota/quota-gate.js'
import { Router } from './routing/router.js'
import { connectRedis, type RedisEvents, type SharedRedis } from './shared/redis.js'
import { chatRoutes } from './routes/chat.js'
import { TURN_LOGGED } from './chat/turn.js'
import { resumeRoutes } from './routes/resume.js'
import { pageRoutes } from './routes/page.js'
import { openAiRoutes } from './routes/openai.js'
import { installSecurity, publicRoutes, StreamCaps } from './security.js'
import { healthRoutes } from './routes/health.js'
import { metricsRoutes } from './routes/metrics.js'

export interface AppOptions {
  config: Config
  /** Upstream base URL when GEMINI_BASE_URL is unset (the embedded simulator's). */
  baseUrl?: string
}

export interface Gateway {
  config: Config
  runner: TaskRunner
  lifecycle: Lifecycle
  metrics: Metrics
  redis: SharedRedis | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    gateway: Gateway
  }
  interface FastifyRequest {
    outcome: string | undefined
  }
}

async function app(fastify: FastifyInstance, { config, baseUrl }: AppOptions): Promise<void> {
  const runner = await createRunner(config, baseUrl)
  runner.on('error', (err: Error) => fastify.log.error({ err }, 'worker error after its turns ended'))
  const metrics = createMetrics(
    runner,
    config.upstreams.deployments.map((d) => d.id)
  )
  const lifecycle = new Lifecycle()
  const watchdog =
    config.POOL_MODE === 'pool'
      ? new Watchdog(runner, config.WORKER_STALL_MS, (threadId) => fastify.log.warn({ threadId }, 'worker stalled; terminated'))
      : undefined
  const dispatcher = new Dispatcher(runner, watchdog, config.POOL_MAX_QUEUE, config.STREAM_TTFT_TIMEOUT_MS, (cause, threadId) => {
    metrics.workerFault(cause, threadId)
    fastify.log.warn({ cause, threadId }, 'worker fault')
  })
  const redis = config.REDIS_URL ? await connectRedis(redisOptions(config.REDIS_URL, config), redisEvents(fastify, metrics)) : undefined
  // A turn lock is a lease renewed while its turn runs (never past the longest stream and a minute),
  // so a dead replica's lock expires within SESSION_LEASE_MS.
  const sessionLimits = { ttlMs: config.SESSION_TTL_MS, max: config.SESSION_MAX, maxTurns: config.SESSION_MAX_TURNS }
  const sessions =
    config.SESSION_STORE === 'redis' && redis
      ? new RedisSessionStore(redis, {
          ...sessionLimits,
          sessionMaxBytes: sessionBytesBound(config.SESSION_MAX_BYTES),
          leaseMs: SESSION_LEASE_MS,
          maxHoldMs: config.STREAM_MAX_MS + 60_000
        })
      : new MemorySessionStore({ ...sessionLimits, maxBytes: config.SESSION_MAX_BYTES })
  const localLog = new MemoryStreamLog(config.RESUME_TTL_MS, config.RESUME_MAX_BYTES)
  const streamLog = redis
    ? new SharedStreamLog(localLog, new RedisStreamLog(redis, config.RESUME_TTL_MS, config.STREAM_MAX_MS), redis)
    : localLog
  const quota = new QuotaGate(config, redis)
  const router = new Router(config, redis, metrics)
  const heartbeats = new Heartbeats(config.SSE_HEARTBEAT_MS)

  fastify.decorate('gateway', { config, runner, lifecycle, metrics, redis })
  installErrorHandler(fastify, (code) => metrics.admissionRefused.inc({ code }))
  // Every body is JSON: Fastify's own text/plain parser would turn a text body into a 400 instead of a 415.
  fastify.removeContentTypeParser('text/plain')
  installJsonParser(fastify)
  fastify.decorateRequest('outcome', undefined)
  // The one log line of a request that was answered normally or refused; a chat turn logs its own when it ends.
  // Probes and scrapes arrive every few seconds from every balancer: debug, not info.
  const probes = new Set(['/healthz', '/readyz', '/metrics'])
  fastify.addHook('onResponse', async (request, reply) => {
    if (request.outcome === TURN_LOGGED) return
    const url = request.routeOptions.url ?? 'unmatched'
    request.log[probes.has(url) ? 'debug' : 'info'](
      {
        method: request.method,
        url,
        statusCode: reply.statusCode,
        outcome: request.outcome ?? 'ok',
        durationMs: Math.round(reply.elapsedTime)
      },
      'request'
    )
  })
  fastify.addHook('onClose', async () => {
    // Streams still open end now, with shutting_down, before the workers go.
    await lifecycle.drain(0)
    heartbeats.close()
    watchdog?.close()
    await runner.close()
    await sessions.close()
    await streamLog.close()
    await redis?.close()
  })

  await installSecurity(fastify, config, redis)
  const caps = new StreamCaps(config.MAX_STREAMS_PER_KEY)

  // The OpenAPI document is generated from the schemas the routes validate with.
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Gemini streaming chat gateway', version: '1' },
      components: { schemas: {} }
    }
  })
  // The page, its files and the API description need no key: a browser loads them before it has one.
  await fastify.register(async (open) => {
    publicRoutes(open)
    await open.register(swaggerUi, { routePrefix: '/docs' })
    open.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger())
    await open.register(pageRoutes)
  })

  await fastify.register(healthRoutes, { config, runner, lifecycle, redis })
  await fastify.register(metricsRoutes, { metrics })
  const turnDeps = { config, dispatcher, sessions, heartbeats, lifecycle, metrics, streamLog, quota, router, caps }
  await fastify.register(chatRoutes, turnDeps)
  await fastify.register(openAiRoutes, turnDeps)
  await fastify.register(resumeRoutes, { config, streamLog, heartbeats, lifecycle })
}

const redisOptions = (url: string, config: Config) => ({ url, mode: config.REDIS_MODE, commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS })

/** Redis's state in /metrics and the log: one line when it goes and comes back, one per new kind of failure. */
function redisEvents(fastify: FastifyInstance, metrics: Metrics): RedisEvents {
  return {
    state(up) {
      metrics.redisState(up)
      if (up) fastify.log.info('redis answers: shared state is in use')
      else fastify.log.warn('redis does not answer: degraded mode (stateless turns served with local quota shares)')
    },
    error(op, err, first) {
      metrics.redisFailed(op)
      if (first) fastify.log.warn({ op, err: (err as Error | undefined)?.message }, 'redis command failed')
    }
  }
}

export default fp(app, { name: 'gateway', fastify: '5.x' })
