// `npm run simulator`: the simulator as its own process, configured by PORT, HOST and SIM_* env.
import { Type } from '@sinclair/typebox'
import { ConfigError, parseEnv } from '../shared/env.js'
import { simulatorEnvSchema, simulatorOptionsFrom } from './options.js'
import { startSimulator } from './server.js'

const envSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65_535, default: 8090 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  ...simulatorEnvSchema.properties
})

let env: typeof envSchema.static
try {
  env = parseEnv(envSchema, process.env)
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  console.error(err.message)
  process.exit(1)
}
const { PORT, HOST, ...simEnv } = env
const options = simulatorOptionsFrom(simEnv)
const simulator = await startSimulator({ ...options, port: PORT, host: HOST })
console.log(`gemini simulator listening on ${simulator.url} (seed ${JSON.stringify(options.seed)})`)

const shutdown = () => {
  simulator.close().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err)
      process.exit(1)
    }
  )
}
process.once('SIGINT', shutdown)
process.once('SIGTERM', shutdown)
