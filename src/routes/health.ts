// Liveness and readiness for a load balancer: /healthz answers while the process runs;
// /readyz only while it has workers and is not draining.
import type { FastifyPluginAsync } from 'fastify'
import type { Lifecycle } from '../lifecycle.js'
import type { TaskRunner } from '../pool/runner.js'
import type { Config } from '../config.js'

export interface HealthOptions { config: Config; runner: TaskRunner; lifecycle: Lifecycle }

export const healthRoutes: FastifyPluginAsync<HealthOptions> = async (fastify, { config, runner, lifecycle }) => {
  fastify.get('/healthz', { schema: { summary: 'Liveness: the process is alive' } }, async () => ({ status: 'ok' }))

  fastify.get('/readyz', { schema: { summary: 'Readiness: workers up and not draining' } }, async (_request, reply) => {
    const workers = runner.size
    const checks = {
      workers: config.POOL_MODE === 'inline' || workers > 0,
      draining: lifecycle.draining
    }
    const ready = checks.workers && !checks.draining
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', workers, draining: lifecycle.draining, activeStreams: lifecycle.streams.size })
  })
}
