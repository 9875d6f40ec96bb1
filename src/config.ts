// Every environment variable, validated once at start-up into a typed, frozen object.
// A bad value stops start-up with one line naming the variable, the value and what is allowed.
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { simulatorEnvSchema } from './simulator/options.js'
import { ConfigError, parseEnv } from './shared/env.js'
import { implicitUpstreams, loadUpstreams } from './routing/deployments.js'

export { ConfigError }

const cores = availableParallelism()
const Int = (def: number | undefined, min: number, max: number, description: string) =>
  Type.Integer({ ...(def === undefined ? {} : { default: def }), minimum: min, maximum: max, description })
const OptionalInt = (min: number, max: number, description: string) => Type.Optional(Int(undefined, min, max, description))
const Flag = (description: string, def: '0' | '1' = '0') =>
  Type.Union([Type.Literal('0'), Type.Literal('1'), Type.Literal('true'), Type.Literal('false')], { default: def, description })

export const envProperties = {
  PORT: Int(3000, 0, 65535, 'HTTP port'),
  HOST: Type.String({ default: '127.0.0.1', minLength: 1, description: 'interface to listen on' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' }
  ),
  LOG_CONTENT: Flag('log message text (off: text never reaches a log line)'),

  GEMINI_API_KEY: Type.Optional(Type.String({ minLength: 1, description: 'unset: the built-in simulator is started' })),
  GEMINI_BASE_URL: Type.Optional(Type.String({ pattern: '^https?://', description: 'upstream base URL' })),
  DEFAULT_MODEL: Type.String({ default: 'gemini-2.5-flash', pattern: '^[A-Za-z0-9._-]+$' }),
  ALLOWED_MODELS: Type.String({
    default: 'gemini-2.5-flash,gemini-2.5-flash-lite,gemini-2.5-pro',
    pattern: '^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$'
  }),

  SSE_HEARTBEAT_MS: Int(15_000, 100, 600_000, 'interval of ": ping" comments on a quiet stream'),
  STREAM_TTFT_TIMEOUT_MS: Int(30_000, 100, 600_000, 'deadline for the first token (upstream_timeout)'),
  STREAM_IDLE_TIMEOUT_MS: Int(30_000, 100, 600_000, 'longest gap between chunks (stream_timeout)'),
  STREAM_MAX_MS: Int(300_000, 1_000, 3_600_000, 'longest stream (stream_timeout)'),
  STREAM_BUFFER_BYTES: Int(1 << 20, 4_096, 64 << 20, 'bytes buffered for one slow reader before client_too_slow'),
  UPSTREAM_RETRIES: Int(2, 0, 10, 'retries on the same deployment before the first chunk'),
  UPSTREAMS_FILE: Type.Optional(
    Type.String({
      minLength: 1,
      description: 'a JSON file of deployments (gemini, vertex, openai) and fallbacks (unset: one per allowed model)'
    })
  ),
  UPSTREAM_COOLDOWN_MS: Int(5_000, 0, 3_600_000, 'how long a deployment is skipped: unreachable, a 429 with no delay, or 3 failed turns'),
  UPSTREAM_READER: Type.Union([Type.Literal('gateway'), Type.Literal('sdk')], {
    default: 'gateway',
    description: "who parses Gemini's event stream (sdk: the SDK's own reader, about 3x the CPU per chunk)"
  }),

  POOL_MODE: Type.Union([Type.Literal('pool'), Type.Literal('inline')], {
    default: 'pool',
    description: 'inline: benchmark baseline only'
  }),
  POOL_MIN_THREADS: Int(cores, 1, 256, 'workers kept alive'),
  POOL_MAX_THREADS: Int(cores, 1, 256, 'most workers'),
  POOL_TASKS_PER_WORKER: Int(256, 1, 4_096, 'streams one worker serves at once (1 = strict isolation)'),
  POOL_MAX_QUEUE: Int(1_024, 0, 1_000_000, 'streams waiting for a worker slot before 503 overloaded'),
  POOL_IDLE_TIMEOUT_MS: Int(60_000, 0, 86_400_000, 'idle worker lifetime above POOL_MIN_THREADS'),
  WORKER_MAX_HEAP_MB: Int(256, 16, 16_384, 'old-generation heap limit per worker'),
  WORKER_STALL_MS: Int(5_000, 200, 600_000, 'a worker silent this long is terminated (worker_stalled)'),
  CHAOS: Flag('honour [[chaos:…]] directives (tests only)'),

  SESSION_STORE: Type.Union([Type.Literal('memory'), Type.Literal('redis')], {
    default: 'memory',
    description: 'redis: sessions shared by every replica (needs REDIS_URL)'
  }),
  REDIS_URL: Type.Optional(
    Type.String({ pattern: '^rediss?://', description: 'shared state: sessions (SESSION_STORE=redis), quota, stream resume' })
  ),
  REDIS_MODE: Type.Union([Type.Literal('standalone'), Type.Literal('cluster')], {
    default: 'standalone',
    description: 'cluster: REDIS_URL names one node of a Redis Cluster and the client finds the rest'
  }),
  REDIS_COMMAND_TIMEOUT_MS: Int(1_000, 50, 60_000, 'longest a Redis command may take before the store counts as unavailable'),
  SESSION_TTL_MS: Int(1_800_000, 1_000, 30 * 86_400_000, 'idle session lifetime'),
  SESSION_MAX: Int(100_000, 1, 10_000_000, 'sessions kept, in memory or in Redis (oldest evicted)'),
  SESSION_MAX_BYTES: Int(256 << 20, 1 << 20, 2 ** 40, 'estimated bytes of in-memory sessions (least recently used evicted)'),
  SESSION_MAX_TURNS: Int(100, 2, 10_000, 'turns kept per session (oldest dropped)'),
  HISTORY_MAX_TURNS: Int(100, 1, 10_000, 'turns accepted in a stateless history'),
  BODY_LIMIT_BYTES: Int(1 << 20, 1_024, 64 << 20, 'largest request body'),
  REQUEST_TIMEOUT_MS: Int(30_000, 1_000, 3_600_000, 'longest time to receive a whole request, headers and body (408 request_timeout)'),

  UPSTREAM_RPM: OptionalInt(1, 100_000_000, 'upstream requests per minute, all replicas together (unset: no limit)'),
  UPSTREAM_TPM: OptionalInt(1, 10_000_000_000, 'upstream input tokens per minute, all replicas together (unset: no limit)'),
  QUOTA_MAX_WAIT_MS: Int(10_000, 0, 600_000, 'longest wait for quota before 429 rate_limited'),
  QUOTA_MAX_QUEUE: Int(1_000, 0, 1_000_000, 'turns waiting for quota in this replica before 429 rate_limited'),
  RESUME_GRACE_MS: Int(0, 0, 600_000, 'how long a stream keeps generating after its client left, so it can resume'),
  RESUME_TTL_MS: Int(120_000, 1_000, 86_400_000, 'how long the events of a stream can be replayed after it ended'),
  RESUME_MAX_BYTES: Int(
    64 << 20,
    0,
    2 ** 36,
    'bytes of stream events one replica keeps in memory for resume (oldest ended streams forgotten first, then the oldest live one: stream_lost)'
  ),

  API_KEYS: Type.Optional(
    Type.String({
      pattern: '^[^,\\s]+(,[^,\\s]+)*$',
      description: 'comma-separated client keys; set: every API route needs Authorization: Bearer <key>'
    })
  ),
  API_KEYS_FILE: Type.Optional(Type.String({ minLength: 1, description: 'a file with one client key per line (added to API_KEYS)' })),
  AUTH_OPEN_HEALTH: Flag('/healthz and /readyz answer without a key', '1'),
  AUTH_OPEN_METRICS: Flag('/metrics answers without a key', '1'),
  RATE_LIMIT_MAX: OptionalInt(1, 10_000_000, 'requests per client key (or IP) per RATE_LIMIT_WINDOW_MS (unset: no limit)'),
  RATE_LIMIT_WINDOW_MS: Int(60_000, 1_000, 86_400_000, 'window of RATE_LIMIT_MAX'),
  MAX_STREAMS_PER_KEY: OptionalInt(1, 1_000_000, 'concurrent streams per client key (or IP) in one replica (unset: no limit)'),
  CORS_ORIGINS: Type.Optional(
    Type.String({
      pattern: '^(\\*|https?://[^,\\s]+(,https?://[^,\\s]+)*)$',
      description: 'comma-separated browser origins allowed to call the API (unset: none)'
    })
  ),
  TRUST_PROXY: Type.String({
    default: '',
    description: 'proxies whose X-Forwarded-For is trusted: true, a hop count, or comma-separated addresses/CIDRs'
  }),

  SHUTDOWN_GRACE_MS: Int(30_000, 0, 3_600_000, 'how long streams may finish after SIGTERM'),
  ...simulatorEnvSchema.properties
} satisfies Record<string, TSchema>

export const EnvSchema = Type.Object(envProperties)
type Env = Static<typeof EnvSchema>

const on = (v: string) => v === '1' || v === 'true'

function derive(env: Env, source: Record<string, string | undefined>) {
  const upstreams = env.UPSTREAMS_FILE
    ? loadUpstreams(env.UPSTREAMS_FILE, source)
    : implicitUpstreams(env.ALLOWED_MODELS.split(','), env.GEMINI_API_KEY, env.GEMINI_BASE_URL)
  // With the file, what a request may name is an alias, and the first one is the default.
  const allowedModels = upstreams.aliases
  const defaultModel = env.UPSTREAMS_FILE && !source.DEFAULT_MODEL ? (allowedModels[0] ?? env.DEFAULT_MODEL) : env.DEFAULT_MODEL
  return {
    ...env,
    DEFAULT_MODEL: defaultModel,
    upstreams,
    LOG_CONTENT: on(env.LOG_CONTENT),
    CHAOS: on(env.CHAOS),
    AUTH_OPEN_HEALTH: on(env.AUTH_OPEN_HEALTH),
    AUTH_OPEN_METRICS: on(env.AUTH_OPEN_METRICS),
    apiKeys: [...(env.API_KEYS?.split(',') ?? []), ...(env.API_KEYS_FILE ? readKeys(env.API_KEYS_FILE) : [])],
    corsOrigins: env.CORS_ORIGINS?.split(','),
    trustProxy: trustProxy(env.TRUST_PROXY),
    allowedModels,
    useSimulator: env.GEMINI_API_KEY === undefined && env.UPSTREAMS_FILE === undefined
  }
}
export type Config = Readonly<ReturnType<typeof derive>>

function readKeys(path: string): string[] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'))
  } catch (err) {
    throw new ConfigError(
      `invalid configuration: API_KEYS_FILE=${JSON.stringify(path)} cannot be read (${(err as NodeJS.ErrnoException).code}); expected a readable file, one key per line`
    )
  }
}

function trustProxy(value: string): boolean | number | string[] {
  if (value === '' || value === 'false') return false
  if (value === 'true') return true
  if (/^\d+$/.test(value)) return Number(value)
  return value.split(',')
}

/** Validates `source` (process.env by default) and returns the frozen config, or throws ConfigError with one line. */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  // Only our own keys, so unrelated variables never fail validation and never reach the config.
  const config = derive(parseEnv(EnvSchema, source), source)
  if (config.POOL_MIN_THREADS > config.POOL_MAX_THREADS) {
    throw new ConfigError(
      `invalid configuration: POOL_MIN_THREADS=${config.POOL_MIN_THREADS} is above POOL_MAX_THREADS=${config.POOL_MAX_THREADS}; expected <= POOL_MAX_THREADS`
    )
  }
  if (config.SESSION_STORE === 'redis' && !config.REDIS_URL) {
    throw new ConfigError('invalid configuration: SESSION_STORE="redis" needs REDIS_URL; expected REDIS_URL=redis://host:6379')
  }
  if (!config.allowedModels.includes(config.DEFAULT_MODEL)) {
    throw new ConfigError(
      `invalid configuration: DEFAULT_MODEL=${JSON.stringify(config.DEFAULT_MODEL)} is not in ${config.UPSTREAMS_FILE ? "UPSTREAMS_FILE's aliases" : 'ALLOWED_MODELS'}; expected one of ${config.allowedModels.join(', ')}`
    )
  }
  return Object.freeze(config)
}
