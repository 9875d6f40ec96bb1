// The protections of a public service, all before a turn is admitted: API keys (constant-time),
// per-client request rate (@fastify/rate-limit, in Redis when replicas share one), a cap on
// concurrent streams per client, a CORS allowlist and security headers.
//
// Who may call what is decided on the route the router matched, never on the request target: the
// router decodes %XX escapes and accepts absolute-form targets (`POST http://x/api/chat`), so a
// decision on `request.url` can be dodged by spelling the same route another way. Every route needs
// a key unless it says otherwise (`config.access`), so a route added later is closed by default.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import cors from '@fastify/cors'
import helmet from '@fastify/helmet'
import rateLimit from '@fastify/rate-limit'
import type { Config } from './config.js'
import { GatewayError, RETRY_AFTER_S } from './errors.js'
import type { SharedRedis } from './shared/redis.js'
import { rateLimitStore } from './rate-limit-store.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling, for limits: a digest of the API key, or the client address. Never the key itself. */
    clientKey: string
  }
  interface FastifyContextConfig {
    /**
     * Who may call the route when API keys are set. Absent: a valid key (every API route).
     * public: anyone (the page, its files, the API description); health and metrics: anyone
     * unless AUTH_OPEN_HEALTH / AUTH_OPEN_METRICS is 0.
     */
    access?: 'public' | 'health' | 'metrics'
  }
}

const digest = (value: string) => createHash('sha256').update(value).digest()

/** An API route: one that a request matched and that declares no open access. Unmatched requests meet the 404 either way. */
const isApiRoute = (request: FastifyRequest) => request.routeOptions.url !== undefined && request.routeOptions.config.access === undefined

/** Marks every route registered in this plugin context (and its children) as public. */
export function publicRoutes(fastify: FastifyInstance): void {
  fastify.addHook('onRoute', (route) => {
    route.config = { ...route.config, access: 'public' }
  })
}

export async function installSecurity(fastify: FastifyInstance, config: Config, redis: SharedRedis | undefined): Promise<void> {
  // Security headers; the SSE stream sets its own. CSP stays with the page, which knows its scripts.
  await fastify.register(helmet, { contentSecurityPolicy: false, global: true })
  if (config.corsOrigins) {
    await fastify.register(cors, {
      origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
      methods: ['GET', 'POST'],
      allowedHeaders: ['content-type', 'authorization', 'last-event-id'],
      exposedHeaders: ['x-request-id', 'retry-after']
    })
  }

  const keys = config.apiKeys.map(digest)
  const needsKey = (request: FastifyRequest) => {
    if (request.routeOptions.url === undefined) return false
    switch (request.routeOptions.config.access) {
      case 'public':
        return false
      case 'health':
        return !config.AUTH_OPEN_HEALTH
      case 'metrics':
        return !config.AUTH_OPEN_METRICS
      default:
        return true
    }
  }
  fastify.decorateRequest('clientKey', '')
  fastify.addHook('onRequest', async (request: FastifyRequest) => {
    const presented = /^Bearer (\S+)$/i.exec(request.headers.authorization ?? '')?.[1]
    request.clientKey = presented && keys.length > 0 ? `key:${digest(presented).toString('hex').slice(0, 16)}` : `ip:${request.ip}`
    if (keys.length === 0 || !needsKey(request)) return
    if (!presented || !knownKey(keys, digest(presented))) throw new GatewayError('unauthorized')
  })

  if (config.RATE_LIMIT_MAX !== undefined) {
    await fastify.register(rateLimit, {
      max: config.RATE_LIMIT_MAX,
      timeWindow: config.RATE_LIMIT_WINDOW_MS,
      keyGenerator: (request) => request.clientKey,
      allowList: (request) => !isApiRoute(request),
      // Shared through Redis by every replica, with a local share while Redis cannot answer.
      ...(redis ? { store: rateLimitStore(redis, 'gw:ratelimit:', config.RATE_LIMIT_WINDOW_MS) } : {}),
      errorResponseBuilder: (_request, context) =>
        new GatewayError('rate_limited', `Too many requests; retry in ${Math.ceil(context.ttl / 1000)} s.`, Math.ceil(context.ttl / 1000))
    })
  }
}

/** Compares against every key, whatever matches, so timing says nothing about which or how much. */
function knownKey(keys: Buffer[], presented: Buffer): boolean {
  let found = false
  for (const key of keys) found = timingSafeEqual(key, presented) || found
  return found
}

/** Concurrent streams per client, in this replica. */
export class StreamCaps {
  private readonly open = new Map<string, number>()
  constructor(private readonly max: number | undefined) {}

  /** Takes a slot or throws rate_limited; the returned function gives it back (once). */
  take(clientKey: string): () => void {
    if (this.max === undefined) return () => {}
    const n = this.open.get(clientKey) ?? 0
    if (n >= this.max) throw new GatewayError('rate_limited', `At most ${this.max} concurrent streams per client.`, RETRY_AFTER_S)
    this.open.set(clientKey, n + 1)
    let given = false
    return () => {
      if (given) return
      given = true
      const left = (this.open.get(clientKey) ?? 1) - 1
      if (left <= 0) this.open.delete(clientKey)
      else this.open.set(clientKey, left)
    }
  }
}
