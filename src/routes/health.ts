// Liveness and readiness for a load balancer: /healthz answers while the process runs; /readyz
// while it has workers and is not draining. Redis does not decide readiness: it is shared, so an
// outage would take every replica out of the balancer at once, while each replica still serves
// stateless turns (degraded mode). The body says whether Redis answers.
import type { FastifyPluginAsync } from 'fastify'
import type { Lifecycle } from '../lifecycle.js'
import type { TaskRunner } from '../pool/runner.js'
import type { Config } from '../config.js'
import type { SharedRedis } from '../shared/redis.js'

export interface HealthOptions {
  config: Config
  runner: TaskRunner
  lifecycle: Lifecycle
  redis: SharedRedis | undefined
}

export const healthRoutes: FastifyPluginAsync<HealthOptions> = async (fastify, { config, runner, lifecycle, redis }) => {
  fastify.get('/healthz', { config: { access: 'health' }, schema: { summary: 'Liveness: the process is alive' } }, async () => ({
    status: 'ok'
  }))

  fastify.get(
    '/readyz',
    { config: { access: 'health' }, schema: { summary: 'Readiness: workers up and not draining (Redis reported, not required)' } },
    async (_request, reply) => {
      const workers = runner.size
      const redisUp = redis?.up
      const ready = (config.POOL_MODE === 'inline' || workers > 0) && !lifecycle.draining
      return reply.status(ready ? 200 : 503).send({
        status: ready ? 'ready' : 'not_ready',
        workers,
        draining: lifecycle.draining,
        activeStreams: lifecycle.streams.size,
        ...(redisUp === undefined ? {} : { redis: redisUp, degraded: !redisUp })
      })
    }
  )
}
