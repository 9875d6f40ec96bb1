import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { LISTEN_BACKLOG } from '../shared/listen.js'
import { AttemptCounter } from './attempts.js'
import { hasFailure, parseDirectives } from './directives.js'
import { resolveSimulatorOptions, type SimulatorOptions } from './options.js'
import { planReply } from './reply.js'
import { lastUserText, parseGenerateRequest } from './request.js'
import { playStream } from './stream.js'
import { errorBody } from './wire.js'

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

const STREAM_PATH = /^\/v1(?:beta)?\/models\/([^/:]+):streamGenerateContent$/
const JSON_HEADERS = { 'content-type': 'application/json; charset=UTF-8' }
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }

function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, JSON_HEADERS).end(body)
}

function readBody(req: IncomingMessage, onBody: (body: string) => void): void {
  let body = ''
  req.setEncoding('utf8')
  req.on('data', (chunk: string) => {
    body += chunk
  })
  req.on('end', () => onBody(body))
}

export async function startSimulator(options: StartSimulatorOptions = {}): Promise<Simulator> {
  const { port = 0, host = '127.0.0.1', ...overrides } = options
  const config = resolveSimulatorOptions(overrides)
  const counts = { started: 0, completed: 0, aborted: 0, requests: 0 }
  const attempts = new AttemptCounter()
  const stats = (): SimulatorStats => ({ active: counts.started - counts.completed - counts.aborted, ...counts })
  let last: SimulatorLastRequest | undefined

  const generate = (res: ServerResponse, model: string, body: string, json: unknown): void => {
    const request = parseGenerateRequest(json)
    if (typeof request === 'string') return sendJson(res, 400, errorBody(400, { message: request }))
    const directives = parseDirectives(lastUserText(request))
    const failing = directives.times === undefined || !hasFailure(directives) || attempts.next(body) <= directives.times
    const plan = planReply(request, directives, failing, config, model)
    if (plan.kind === 'error') return sendJson(res, plan.status, plan.body)
    counts.started++
    res.once('close', () => {
      if (res.writableFinished) counts.completed++
      else counts.aborted++
    })
    res.writeHead(200, SSE_HEADERS)
    res.flushHeaders()
    playStream(res, plan.events, plan.ending, plan.ttftMs, plan.delayMs)
  }

  const server = createServer((req, res) => {
    const url = req.url ?? '/'
    const query = url.indexOf('?')
    const path = query < 0 ? url : url.slice(0, query)
    if (req.method === 'POST') {
      counts.requests++
      const model = STREAM_PATH.exec(path)?.[1]
      if (model !== undefined) {
        // Without alt=sse the real service streams one JSON array, a format the simulator does not speak.
        if (new URLSearchParams(query < 0 ? '' : url.slice(query + 1)).get('alt') !== 'sse') {
          return sendJson(res, 400, errorBody(400, { message: 'The simulator only serves alt=sse streams.' }))
        }
        return readBody(req, (body) => {
          let json: unknown
          try {
            json = JSON.parse(body)
          } catch {
            last = { method: 'POST', path, body }
            return sendJson(res, 400, errorBody(400, { message: 'Invalid JSON payload received. Unexpected token.' }))
          }
          last = { method: 'POST', path, body: json }
          generate(res, model, body, json)
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
