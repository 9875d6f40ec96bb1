// Request bodies are JSON, parsed by Fastify's own parser (secure-json-parse: `__proto__` and
// `constructor.prototype` refused), after a check of how deeply the text nests. Deep nesting is
// cheap to send and expensive to hold: every recursive step after parsing (validation, token
// estimates, the structured clone to a worker, Gemini's own limits) would meet it, and a stack
// overflow there is a 500 or a false worker fault. One bound at the edge is a 400 instead.
import type { FastifyInstance } from 'fastify'
import { GatewayError } from './errors.js'

/** Deepest nesting of arrays and objects a body may have. A turn needs ~6; a tool's JSON Schema a dozen more. */
export const JSON_MAX_DEPTH = 64

export function installJsonParser(fastify: FastifyInstance): void {
  const parse = fastify.getDefaultJsonParser('error', 'error')
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, raw, done) => {
    const body = raw as string
    if (deeperThan(body, JSON_MAX_DEPTH)) {
      done(new GatewayError('bad_request', `The JSON body nests arrays and objects more than ${JSON_MAX_DEPTH} levels deep.`), undefined)
      return
    }
    void parse(request, body, done)
  })
}

/** Whether `[` and `{` outside strings open more than `limit` levels at once: one pass, no parse. */
export function deeperThan(text: string, limit: number): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return false
}
