// A real gateway on port 0 in front of a real simulator on port 0, closed after each use.
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance } from 'fastify'
import app from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { loggerOptions, serverOptions } from '../../src/server-options.js'
import { startSimulator, type Simulator, type StartSimulatorOptions } from '../../src/simulator/index.js'

export interface TestGateway {
  url: string
  app: FastifyInstance
  sim: Simulator
  config: Config
  /** Every log line, parsed, when started with `logs: true`. */
  logs: any[]
  close(): Promise<void>
}

/** Fast defaults so tests finish quickly; a test overrides what it exercises. */
export async function startGateway(
  env: Record<string, string> = {},
  sim: StartSimulatorOptions = {},
  opts: { logs?: boolean } = {}
): Promise<TestGateway> {
  const simulator = await startSimulator({ ttftMs: 0, delayMs: 0, tokens: 12, ...sim })
  const config = loadConfig({ POOL_MIN_THREADS: '1', POOL_MAX_THREADS: '2', ...env })
  const logs: any[] = []
  const stream = new Writable({
    write(line, _enc, done) {
      logs.push(JSON.parse(String(line)))
      done()
    }
  })
  // The process's own logger options (redaction included), written to memory.
  const fastify = Fastify(serverOptions(config, opts.logs ? loggerOptions(config, stream) : false))
  await fastify.register(app, { config, baseUrl: simulator.url })
  await fastify.listen({ port: 0, host: '127.0.0.1' })
  const address = fastify.server.address()
  if (!address || typeof address === 'string') throw new Error('no port')
  return {
    url: `http://127.0.0.1:${address.port}`,
    app: fastify,
    sim: simulator,
    config,
    logs,
    async close() {
      await fastify.close()
      await simulator.close()
    }
  }
}

/**
 * Polls until `check` returns true, for state that no event announces. The budget only turns a
 * hang into a message: it is far above anything a loaded machine needs, and never what a test shows.
 */
export async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + UNTIL_BUDGET_MS
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Below vitest's testTimeout (vitest.config.ts), so that a stuck wait says what it waited for. */
export const UNTIL_BUDGET_MS = 45_000
