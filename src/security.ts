// The protections of a public service, all before a turn is admitted: API keys (constant-time),
// per-client request rate (@fastify/rate-limit, in Redis when replicas share one), a cap on
// concurrent streams per client, a CORS allowlist and security headers.
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
}

const digest = (value: string) => createHash('sha256').update(value).digest()

/** Routes that never need a key: the page and its files, the API description. */
const isApi = (url: string) => url.startsWith('/api/') || url.startsWith('/v1/')

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
  const protectedPath = (url: string) =>
    isApi(url) ||
    (url === '/metrics' && !config.AUTH_OPEN_METRICS) ||
    ((url === '/healthz' || url === '/readyz') && !config.AUTH_OPEN_HEALTH)
  fastify.decorateRequest('clientKey', '')
  fastify.addHook('onRequest', async (request: FastifyRequest) => {
    const presented = /^Bearer (\S+)$/i.exec(request.headers.authorization ?? '')?.[1]
    request.clientKey = presented && keys.length > 0 ? `key:${digest(presented).toString('hex').slice(0, 16)}` : `ip:${request.ip}`
    if (keys.length === 0 || !protectedPath(request.url.split('?', 1)[0] ?? '')) return
    if (!presented || !knownKey(keys, digest(presented))) throw new GatewayError('unauthorized')
  })

  if (config.RATE_LIMIT_MAX !== undefined) {
    await fastify.register(rateLimit, {
      max: config.RATE_LIMIT_MAX,
      timeWindow: config.RATE_LIMIT_WINDOW_MS,
      keyGenerator: (request) => request.clientKey,
      allowList: (request) => !isApi(request.url),
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
