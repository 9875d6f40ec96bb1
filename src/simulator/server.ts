import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { LISTEN_BACKLOG } from '../shared/listen.js'
import { AttemptCounter } from './attempts.js'
import { credentialRefusal } from './credentials.js'
import { hasFailure, parseDirectives } from './directives.js'
import { resolveSimulatorOptions, type SimulatorOptions } from './options.js'
import { planReply } from './reply.js'
import { lastUserText, parseGenerateRequest } from './request.js'
import { openAiCompletion, openAiErrorBody, openAiStreamEvents, parseOpenAiRequest, type OpenAiRequest } from './openai.js'
import { RequestQuota } from './quota.js'
import { playStream, playUnary } from './stream.js'
import { TokenIssuer, UNAUTHENTICATED, VERTEX_PATH } from './vertex.js'
import { errorBody, unaryResponse } from './wire.js'

export interface SimulatorStats {
  /** started − completed − aborted */
  active: number
  /** streams that got 200 SSE headers */
  started: number
  /** streams that ended normally, including fail-after, block and safety */
  completed: number
  /** streams whose client went away, or that drop-after cut, before the end */
  aborted: number
  /** every POST received */
  requests: number
  /** requests refused 429 by the SIM_RPM quota */
  rateLimited: number
  /** access tokens issued by POST /token */
  tokensIssued: number
}

/** The last generate request as received (GET /__sim/last), so a test can see what the gateway sent. */
export interface SimulatorLastRequest {
  method: string
  path: string
  body: unknown
}

export interface Simulator {
  /** e.g. http://127.0.0.1:PORT, the SDK's `httpOptions.baseUrl` */
  url: string
  port: number
  stats(): SimulatorStats
  last(): SimulatorLastRequest | undefined
  /** Stops listening and destroys open connections, hung streams included. */
  close(): Promise<void>
}

export type StartSimulatorOptions = Partial<SimulatorOptions> & { port?: number; host?: string }

/** AI Studio: `/v1beta/models/{model}:streamGenerateContent?alt=sse` (and `:generateContent`). */
const STUDIO_PATH = /^\/v1(?:beta)?\/models\/([^/:]+):(streamGenerateContent|generateContent)$/
const JSON_HEADERS = { 'content-type': 'application/json; charset=UTF-8' }
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }

function sendJson(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...JSON_HEADERS, ...headers }).end(body)
}

function readBody(req: IncomingMessage, onBody: (body: string) => void): void {
  let body = ''
  req.setEncoding('utf8')
  req.on('data', (chunk: string) => {
    body += chunk
  })
  req.on('end', () => onBody(body))
}

/** How a reply goes out: Gemini's SSE stream, its unary JSON, or OpenAI's chat completions. */
type Wire = { kind: 'gemini'; stream: boolean } | { kind: 'openai'; request: OpenAiRequest }

export async function startSimulator(options: StartSimulatorOptions = {}): Promise<Simulator> {
  const { port = 0, host = '127.0.0.1', ...overrides } = options
  const config = resolveSimulatorOptions(overrides)
  const counts = { started: 0, completed: 0, aborted: 0, requests: 0, rateLimited: 0 }
  const attempts = new AttemptCounter()
  const quota = new RequestQuota(config.rpm)
  const tokens = new TokenIssuer()
  const stats = (): SimulatorStats => ({
    active: counts.started - counts.completed - counts.aborted,
    ...counts,
    tokensIssued: tokens.issued
  })
  let last: SimulatorLastRequest | undefined

  const refuse = (res: ServerResponse, wire: Wire, status: number, body: string, retryDelayMs?: number): void => {
    if (wire.kind === 'gemini') return sendJson(res, status, body)
    const message =
      status === 429
        ? `Rate limit reached; retry after ${Math.ceil((retryDelayMs ?? 1000) / 1000)}s.`
        : ((JSON.parse(body) as { error?: { message?: string } }).error?.message ?? 'Error')
    const retryAfter: Record<string, string> =
      status === 429 && retryDelayMs ? { 'retry-after': String(Math.ceil(retryDelayMs / 1000)) } : {}
    sendJson(res, status, openAiErrorBody(status, message), retryAfter)
  }

  /** One generate request, whatever the wire: the same plan, directives, quota and counters. */
  const generate = (res: ServerResponse, wire: Wire, caller: string, model: string, body: string, json: unknown): void => {
    const request = parseGenerateRequest(json)
    if (typeof request === 'string') return refuse(res, wire, 400, errorBody(400, { message: request }))
    const overQuota = quota.take(caller, model)
    if (overQuota !== undefined) {
      counts.rateLimited++
      return refuse(res, wire, 429, errorBody(429, { model, retryDelayMs: overQuota }), overQuota)
    }
    const directives = parseDirectives(lastUserText(request))
    const failing = directives.times === undefined || !hasFailure(directives) || attempts.next(body) <= directives.times
    const refusal = failing ? credentialRefusal(directives, wire.kind, caller) : undefined
    if (refusal) return sendJson(res, refusal.status, refusal.body)
    const plan = planReply(request, directives, failing, config, model)
    if (plan.kind === 'error') return refuse(res, wire, plan.status, plan.body, directives.retryDelayMs ?? config.retryDelayMs)
    counts.started++
    res.once('close', () => {
      if (res.writableFinished) counts.completed++
      else counts.aborted++
    })
    if (wire.kind === 'openai' && !wire.request.stream) return playUnary(res, plan, openAiCompletion(plan.events, wire.request))
    if (wire.kind === 'gemini' && !wire.stream) return playUnary(res, plan, unaryResponse(plan.events))
    res.writeHead(200, SSE_HEADERS)
    res.flushHeaders()
    const events = wire.kind === 'openai' ? openAiStreamEvents(plan.events, wire.request, plan.ending === 'drop') : plan.events
    playStream(res, events, plan.ending, plan.ttftMs, plan.delayMs)
  }

  /** Reads a JSON body, remembers it for /__sim/last, and hands it on; malformed JSON is Gemini's 400. */
  const withJson = (
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    wire: Wire | 'openai',
    handle: (body: string, json: unknown) => void
  ) =>
    readBody(req, (body) => {
      let json: unknown
      try {
        json = JSON.parse(body)
      } catch {
        last = { method: 'POST', path, body }
        const error = errorBody(400, { message: 'Invalid JSON payload received. Unexpected token.' })
        return wire === 'openai' ? sendJson(res, 400, openAiErrorBody(400, 'Invalid JSON.')) : refuse(res, wire, 400, error)
      }
      last = { method: 'POST', path, body: json }
      handle(body, json)
    })

  const server = createServer((req, res) => {
    const url = req.url ?? '/'
    const query = url.indexOf('?')
    const path = query < 0 ? url : url.slice(0, query)
    const sse = () => new URLSearchParams(query < 0 ? '' : url.slice(query + 1)).get('alt') === 'sse'
    if (req.method === 'POST') {
      counts.requests++
      const studio = STUDIO_PATH.exec(path)
      const vertex = studio ? null : VERTEX_PATH.exec(path)
      const match = studio ?? vertex
      if (match) {
        const [, model = '', method] = studio ?? [match[0], match[3], match[4]]
        const stream = method === 'streamGenerateContent'
        // Without alt=sse the real service streams one JSON array, a format the simulator does not speak.
        if (stream && !sse()) return sendJson(res, 400, errorBody(400, { message: 'The simulator only serves alt=sse streams.' }))
        const caller = vertex ? tokens.account(req.headers.authorization) : String(req.headers['x-goog-api-key'] ?? '')
        if (caller === undefined) return sendJson(res, 401, UNAUTHENTICATED)
        const wire: Wire = { kind: 'gemini', stream }
        return withJson(req, res, path, wire, (body, json) => generate(res, wire, caller, model, body, json))
      }
      if (path === '/token') {
        return readBody(req, (form) => {
          const answer = tokens.issue(form)
          sendJson(res, answer.status, answer.body)
        })
      }
      if (path === '/v1/chat/completions') {
        return withJson(req, res, path, 'openai', (body, json) => {
          const request = parseOpenAiRequest(json)
          if (typeof request === 'string') return sendJson(res, 400, openAiErrorBody(400, request))
          const caller = req.headers.authorization ?? ''
          generate(res, { kind: 'openai', request }, caller, request.model, body, request.gemini)
        })
      }
    } else if (req.method === 'GET') {
      if (path === '/healthz') return sendJson(res, 200, '{"ok":true}')
      if (path === '/__sim/stats') return sendJson(res, 200, JSON.stringify(stats()))
      if (path === '/__sim/last') {
        return last ? sendJson(res, 200, JSON.stringify(last)) : sendJson(res, 404, errorBody(404, { message: 'No generate request yet.' }))
      }
    }
    sendJson(res, 404, errorBody(404, { message: `${req.method} ${path} is not served by the Gemini simulator.` }))
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    // Node's backlog of 511 filled for ~5 s when 2,048 benchmark streams started within 3 s
    // (ss: Recv-Q 512), and the gateway's connections waited on SYN retries.
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    stats,
    last: () => last,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()))
        server.closeAllConnections()
      })
  }
}
