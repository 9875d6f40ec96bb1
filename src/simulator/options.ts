import { Type, type Static } from '@sinclair/typebox'
import { parseEnv, type ConfigError } from '../shared/env.js'

// Upper bounds keep a typo from allocating millions of tokens or overflowing setTimeout (2^31-1 ms).
export const MAX_SIM_TOKENS = 100_000
export const MAX_SIM_MS = 3_600_000

const ms = (defaultMs: number, description: string) => Type.Integer({ minimum: 0, maximum: MAX_SIM_MS, default: defaultMs, description })

export const simulatorEnvSchema = Type.Object({
  SIM_SEED: Type.String({ minLength: 1, default: 'gateway', description: 'seed mixed into every reply text' }),
  SIM_TOKENS: Type.Integer({ minimum: 1, maximum: MAX_SIM_TOKENS, default: 48, description: 'output tokens per reply' }),
  SIM_TOKENS_PER_CHUNK: Type.Integer({ minimum: 1, maximum: MAX_SIM_TOKENS, default: 1, description: 'tokens per streamed chunk' }),
  SIM_TTFT_MS: ms(150, 'delay before the first chunk'),
  SIM_DELAY_MS: ms(25, 'delay between chunks'),
  SIM_RETRY_DELAY_MS: ms(26_000, 'RetryInfo delay sent with a 429'),
  SIM_RPM: Type.Integer({
    minimum: 0,
    maximum: 1_000_000,
    default: 0,
    description: 'requests per minute per caller and model before a 429 (0: no quota)'
  })
})

export type SimulatorEnv = Static<typeof simulatorEnvSchema>

export interface SimulatorOptions {
  seed: string
  tokens: number
  tokensPerChunk: number
  ttftMs: number
  delayMs: number
  retryDelayMs: number
  rpm: number
}

const ENV_NAMES: Record<keyof SimulatorOptions, keyof SimulatorEnv> = {
  seed: 'SIM_SEED',
  tokens: 'SIM_TOKENS',
  tokensPerChunk: 'SIM_TOKENS_PER_CHUNK',
  ttftMs: 'SIM_TTFT_MS',
  delayMs: 'SIM_DELAY_MS',
  retryDelayMs: 'SIM_RETRY_DELAY_MS',
  rpm: 'SIM_RPM'
}

export function simulatorOptionsFrom(env: SimulatorEnv): SimulatorOptions {
  return {
    seed: env.SIM_SEED,
    tokens: env.SIM_TOKENS,
    tokensPerChunk: env.SIM_TOKENS_PER_CHUNK,
    ttftMs: env.SIM_TTFT_MS,
    delayMs: env.SIM_DELAY_MS,
    retryDelayMs: env.SIM_RETRY_DELAY_MS,
    rpm: env.SIM_RPM
  }
}

/** Schema defaults with the given overrides; throws a RangeError naming the first invalid option. */
export function resolveSimulatorOptions(overrides: Partial<SimulatorOptions>): SimulatorOptions {
  const env: Record<string, unknown> = {}
  for (const [option, name] of Object.entries(ENV_NAMES)) env[name] = overrides[option as keyof SimulatorOptions]
  try {
    return simulatorOptionsFrom(parseEnv(simulatorEnvSchema, env))
  } catch (err) {
    const option = Object.entries(ENV_NAMES).find(([, name]) => name === (err as ConfigError).variable)?.[0]
    throw new RangeError(
      `simulator option ${option}=${JSON.stringify(overrides[option as keyof SimulatorOptions])}: ${(err as Error).message}`
    )
  }
}
