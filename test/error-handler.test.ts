// Every way a request can fail before a stream starts maps to a registry code, and nothing internal leaks.
import Fastify from 'fastify'
import { expect, test } from 'vitest'
import { installErrorHandler } from '../src/error-handler.js'
import { GatewayError } from '../src/errors.js'

const app = Fastify({ logger: false })
const refused: string[] = []
installErrorHandler(app, (code) => refused.push(code))
app.get('/gateway-error', async () => {
  throw new GatewayError('overloaded', undefined, 3)
})
app.get('/bug', async () => {
  throw new Error('secret internals at /srv/app/src/file.ts:12')
})
app.get('/client-4xx', async () => {
  throw Object.assign(new Error('bad range'), { statusCode: 416 })
})

test.each([
  ['/gateway-error', 503, 'overloaded', 'The gateway is at capacity; retry later.'],
  ['/bug', 500, 'internal_error', 'Internal error.'],
  ['/client-4xx', 400, 'bad_request', 'bad range'],
  ['/missing', 404, 'not_found', 'No route GET /missing.']
])('%s → %i %s', async (url, status, code, message) => {
  const res = await app.inject({ url })
  expect(res.statusCode).toBe(status)
  expect(res.json()).toEqual({ error: { code, message } })
  expect(res.body).not.toMatch(/secret|\.ts:\d|\bat \/|stack/)
})

test('Retry-After comes with a refusal that has one', async () => {
  const res = await app.inject({ url: '/gateway-error' })
  expect(res.headers['retry-after']).toBe('3')
})
