// The process: configuration, logger, the embedded simulator when there is no key, listen, and a
// graceful drain on SIGTERM/SIGINT. Everything the service does lives in app.ts.
import Fastify from 'fastify'
import closeWithGrace from 'close-with-grace'
import { ConfigError, loadConfig, type Config } from './config.js'
import app from './app.js'
import { loggerOptions, serverOptions } from './server-options.js'
import { LISTEN_BACKLOG } from './shared/listen.js'
import { simulatorOptionsFrom, startSimulator, type Simulator } from './simulator/index.js'

function configOrExit(): Config {
  try {
    return loadConfig()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`${err.message}\n`)
    process.exit(1)
  }
}

const config = configOrExit()
const fastify = Fastify(serverOptions(config, loggerOptions(config)))

let simulator: Simulator | undefined
if (config.useSimulator) {
  simulator = await startSimulator({ ...simulatorOptionsFrom(config), port: 0, host: '127.0.0.1' })
  fastify.log.info({ simulator: simulator.url }, `no GEMINI_API_KEY: serving chat from the built-in Gemini simulator at ${simulator.url}`)
} else if (config.UPSTREAMS_FILE) {
  // What the file made, for the operator: never a key.
  const deployments = config.upstreams.deployments.map(({ id, provider, alias, model, baseUrl, location }) => ({
    id,
    provider,
    alias,
    model,
    baseUrl,
    location
  }))
  fastify.log.info({ deployments, fallbacks: config.upstreams.fallbacks }, `routing across ${deployments.length} deployments`)
} else {
  fastify.log.info({ upstream: config.GEMINI_BASE_URL ?? 'https://generativelanguage.googleapis.com' }, 'calling Gemini')
}

await fastify.register(app, { config, ...(simulator ? { baseUrl: simulator.url } : {}) })

closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS + 10_000, logger: fastify.log }, async ({ signal, err }) => {
  if (err) fastify.log.error({ err }, 'fatal error, closing')
  else fastify.log.info({ signal, graceMs: config.SHUTDOWN_GRACE_MS, openStreams: fastify.gateway.lifecycle.streams.size }, 'draining')
  await fastify.gateway.lifecycle.drain(config.SHUTDOWN_GRACE_MS)
  await fastify.close()
  await simulator?.close()
})

await fastify.listen({ port: config.PORT, host: config.HOST, backlog: LISTEN_BACKLOG })
