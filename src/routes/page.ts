// GET /: the browser chat page (filled in by the page work).
import type { FastifyPluginAsync } from 'fastify'

export const pageRoutes: FastifyPluginAsync = async () => {}
