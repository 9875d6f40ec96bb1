// Environment variables validated by a schema, for the gateway (config.ts) and the standalone
// simulator (simulator/main.ts) alike: only the schema's own keys are read, and a bad value is one
// line naming the variable, the value and what is allowed.
import envSchema from 'env-schema'
import type { Static, TObject, TSchema } from '@sinclair/typebox'

export class ConfigError extends Error {
  override name = 'ConfigError'
  constructor(
    message: string,
    /** The variable at fault, when one is. */
    readonly variable?: string
  ) {
    super(message)
  }
}

interface AjvError {
  instancePath: string
  message?: string
  params: { missingProperty?: string } & Record<string, unknown>
  keyword: string
}

const variableOf = (err: AjvError) => err.instancePath.replace(/^\//, '') || (err.params.missingProperty ?? '')

function describe(err: AjvError, properties: Record<string, TSchema>, source: Record<string, unknown>): string {
  const name = variableOf(err)
  const schema = properties[name]
  const options = schema?.anyOf as TSchema[] | undefined
  const allowed = options
    ? `one of ${options.map((s) => String(s.const)).join(', ')}`
    : [
        schema?.minimum !== undefined && `>= ${schema.minimum}`,
        schema?.maximum !== undefined && `<= ${schema.maximum}`,
        schema?.type === 'integer' && 'an integer',
        schema?.pattern && `matching ${schema.pattern}`
      ]
        .filter(Boolean)
        .join(', ')
  return `invalid configuration: ${name}=${JSON.stringify(source[name])} is not allowed (${err.message ?? err.keyword}); expected ${allowed || schema?.type}`
}

/** The schema's variables from `source`, defaults applied; throws ConfigError with one line. An empty value counts as unset. */
export function parseEnv<T extends TObject>(schema: T, source: Record<string, unknown>): Static<T> {
  const picked: Record<string, unknown> = {}
  for (const key of Object.keys(schema.properties)) {
    const value = source[key]
    if (value !== undefined && value !== '') picked[key] = value
  }
  try {
    return envSchema<Static<T>>({ schema, data: picked, env: false, ajv: { customOptions: (ajv) => ajv } })
  } catch (err) {
    const first = (err as { errors?: AjvError[] }).errors?.[0]
    if (!first) throw new ConfigError((err as Error).message)
    throw new ConfigError(describe(first, schema.properties, source), variableOf(first))
  }
}
