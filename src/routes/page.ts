// GET /: the browser chat page. Static files from src/public, the compiled client (dist/src/client)
// at /client/*.js and eventsource-parser's ESM build at /vendor/eventsource-parser.js; the page's
// import map points the client's bare `eventsource-parser` import there. No bundler.
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'

/** The folder holding package.json: this module runs from src/routes (tests) or dist/src/routes (production). */
export function projectRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`)
  }
}

const HTML = 'text/html; charset=utf-8'
const TYPES: Record<string, string> = {
  '.html': HTML,
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml'
}

/** A strict policy: scripts only from this origin, plus the inline import map by its hash. */
export function contentSecurityPolicy(html: string): string {
  const hashes = [...html.matchAll(/<script type="importmap">([\s\S]*?)<\/script>/g)].map(
    (m) =>
      `'sha256-${createHash('sha256')
        .update(m[1] ?? '')
        .digest('base64')}'`
  )
  return [
    "default-src 'none'",
    `script-src 'self' ${hashes.join(' ')}`.trim(),
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'"
  ].join('; ')
}

export const pageRoutes: FastifyPluginAsync = async (fastify) => {
  const root = projectRoot()
  const publicDir = join(root, 'src', 'public')
  const clientDir = join(root, 'dist', 'src', 'client')
  const vendorFile = join(dirname(createRequire(join(root, 'package.json')).resolve('eventsource-parser/package.json')), 'dist', 'index.js')
  const indexHtml = await readFile(join(publicDir, 'index.html'), 'utf8')
  const csp = contentSecurityPolicy(indexHtml)

  const send = async (reply: FastifyReply, file: string, ext: string) => {
    let body: Buffer
    try {
      body = await readFile(file)
    } catch {
      reply.callNotFound()
      return reply
    }
    return reply
      .header('content-type', TYPES[ext] ?? 'application/octet-stream')
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(body)
  }

  fastify.get('/', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .header('content-type', HTML)
      .header('content-security-policy', csp)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .send(indexHtml)
  )

  for (const name of ['app.js', 'style.css']) {
    fastify.get(`/${name}`, { schema: { hide: true } }, async (_request, reply) =>
      send(reply, join(publicDir, name), name.slice(name.lastIndexOf('.')))
    )
  }

  fastify.get<{ Params: { file: string } }>('/client/:file', { schema: { hide: true } }, async (request, reply) => {
    const { file } = request.params
    if (!/^[A-Za-z0-9_-]+\.js$/.test(file)) {
      reply.callNotFound()
      return reply
    }
    return send(reply, join(clientDir, file), '.js')
  })

  fastify.get('/vendor/eventsource-parser.js', { schema: { hide: true } }, async (_request, reply) => send(reply, vendorFile, '.js'))
}
