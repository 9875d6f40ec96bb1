// `npm run simulator`: the simulator as its own process, configured by PORT, HOST and SIM_* env.
import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { allowedValues, simulatorEnvSchema, simulatorOptionsFrom } from './options.js'
import { startSimulator } from './server.js'

const envSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65_535, default: 8090 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  ...simulatorEnvSchema.properties
})

// Value.Convert would truncate "1.5" to 1; only whole numbers become integers, anything else fails the check.
const raw: Record<string, unknown> = {}
for (const [name, property] of Object.entries(envSchema.properties)) {
  const value = process.env[name]
  if (value !== undefined) raw[name] = property.type === 'integer' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value
}
const env = Value.Default(envSchema, raw)
const error = Value.Errors(envSchema, env).First()
if (error) {
  const name = error.path.slice(1)
  console.error(`invalid ${name}=${JSON.stringify(process.env[name])}: expected ${allowedValues(error.schema)}`)
  process.exit(1)
}
const { PORT, HOST, ...simEnv } = env as typeof envSchema.static
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
