import type { FastifyPluginAsync } from 'fastify'
import type { Metrics } from '../metrics.js'

export const metricsRoutes: FastifyPluginAsync<{ metrics: Metrics }> = async (fastify, { metrics }) => {
  fastify.get(
    '/metrics',
    { config: { access: 'metrics' }, schema: { summary: 'Prometheus metrics', hide: false } },
    async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  )
}
