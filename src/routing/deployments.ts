// The upstreams a turn can be routed to. With UPSTREAMS_FILE: its deployments (AI Studio keys,
// Vertex AI regions, OpenAI-compatible servers), validated once at start-up; without it, one
// implicit AI Studio deployment per allowed model (Gemini's quotas are per model, so a model's 429
// cools only that model down). Errors name the file and the deployment, never a key.
import { existsSync, readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { DeploymentSettings } from '../protocol.js'
import { ConfigError } from '../shared/env.js'

export const PROVIDERS = ['gemini', 'vertex', 'openai'] as const
/** Also a metrics label value, so a closed, tame set. */
const ID_PATTERN = '^[A-Za-z0-9._-]{1,64}$'
export const MODEL_PATTERN = '^[A-Za-z0-9._-]+$'

const DeploymentSchema = Type.Object(
  {
    id: Type.String({ pattern: ID_PATTERN }),
    provider: Type.Union(PROVIDERS.map((p) => Type.Literal(p))),
    alias: Type.String({ pattern: MODEL_PATTERN, maxLength: 128 }),
    model: Type.String({ minLength: 1, maxLength: 256 }),
    baseUrl: Type.Optional(Type.String({ pattern: '^https?://' })),
    apiKey: Type.Optional(Type.String({ minLength: 1 })),
    apiKeyEnv: Type.Optional(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' })),
    project: Type.Optional(Type.String({ minLength: 1 })),
    location: Type.Optional(Type.String({ pattern: '^[a-z0-9-]+$' })),
    credentialsFile: Type.Optional(Type.String({ minLength: 1 })),
    rpm: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000 })),
    tpm: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000_000 })),
    weight: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1_000 }))
  },
  { additionalProperties: false }
)

const UpstreamsFileSchema = Type.Object(
  {
    deployments: Type.Array(DeploymentSchema, { minItems: 1, maxItems: 256 }),
    fallbacks: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String(), { maxItems: 64 })))
  },
  { additionalProperties: false }
)

/** A deployment as the front routes it: what the worker needs, plus its alias, budgets and weight. */
export interface Deployment extends DeploymentSettings {
  alias: string
  rpm?: number
  tpm?: number
  weight: number
}

export interface Upstreams {
  deployments: Deployment[]
  /** alias → the aliases tried, in order, when it has no deployment to offer. */
  fallbacks: Record<string, string[]>
  /** What a request may name as its model, in the file's order. */
  aliases: string[]
}

/** Without UPSTREAMS_FILE: every allowed model is its own AI Studio deployment, on GEMINI_BASE_URL (or the simulator). */
export function implicitUpstreams(models: string[], apiKey: string | undefined, baseUrl: string | undefined): Upstreams {
  return {
    deployments: models.map((model) => ({
      id: model,
      provider: 'gemini',
      alias: model,
      model,
      weight: 1,
      ...(apiKey ? { apiKey } : {}),
      ...(baseUrl ? { baseUrl } : {})
    })),
    fallbacks: {},
    aliases: models
  }
}

/** Where Application Default Credentials come from without a key file in the deployment. */
function adcAvailable(env: Record<string, string | undefined>): boolean {
  if (env.GOOGLE_APPLICATION_CREDENTIALS) return existsSync(env.GOOGLE_APPLICATION_CREDENTIALS)
  // google-auth-library's own switch for "a metadata server is there" (GCE, GKE, Cloud Run).
  if (env.METADATA_SERVER_DETECTION === 'assume-present') return true
  return existsSync(join(env.CLOUDSDK_CONFIG ?? join(homedir(), '.config', 'gcloud'), 'application_default_credentials.json'))
}

/** A service-account key file the worker can sign with; the message says what is wrong, never what is in it. */
function checkCredentials(path: string): string | undefined {
  let json: unknown
  try {
    json = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return `credentialsFile ${JSON.stringify(path)} ${code ? `cannot be read (${code})` : 'is not JSON'}`
  }
  const key = json as Record<string, unknown>
  if (key.type !== 'service_account' || typeof key.client_email !== 'string' || typeof key.private_key !== 'string') {
    return `credentialsFile ${JSON.stringify(path)} is not a service-account key (type, client_email, private_key)`
  }
  return undefined
}

/** Reads and checks UPSTREAMS_FILE; throws ConfigError with one line. `env` resolves apiKeyEnv. */
export function loadUpstreams(path: string, env: Record<string, string | undefined>): Upstreams {
  const fail = (what: string): never => {
    throw new ConfigError(`invalid configuration: UPSTREAMS_FILE=${JSON.stringify(path)}: ${what}`, 'UPSTREAMS_FILE')
  }
  let json: unknown
  try {
    json = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return fail(code ? `cannot be read (${code}); expected a readable JSON file` : `is not JSON (${(err as Error).message})`)
  }
  const deploymentsOf = (json as { deployments?: unknown } | null)?.deployments
  for (const [i, d] of (Array.isArray(deploymentsOf) ? deploymentsOf : []).entries()) {
    const provider = (d as { provider?: unknown } | null)?.provider
    if (!PROVIDERS.includes(provider as (typeof PROVIDERS)[number])) {
      fail(`deployments/${i}: unknown provider ${JSON.stringify(provider)}; expected one of ${PROVIDERS.join(', ')}`)
    }
  }
  const error = Value.Errors(UpstreamsFileSchema, json).First()
  // The path and the rule only: a key's value never reaches the message.
  if (error) return fail(`${error.path || '/'} ${error.message}`)
  const file = json as Static<typeof UpstreamsFileSchema>

  const seen = new Set<string>()
  const deployments = file.deployments.map((d, i): Deployment => {
    const where = `deployments/${i} (${d.id})`
    if (seen.has(d.id)) fail(`${where}: the id is used twice`)
    seen.add(d.id)
    if (d.apiKey && d.apiKeyEnv) fail(`${where}: set apiKey or apiKeyEnv, not both`)
    const apiKey = d.apiKeyEnv ? env[d.apiKeyEnv] : d.apiKey
    if (d.apiKeyEnv && !apiKey) fail(`${where}: apiKeyEnv ${d.apiKeyEnv} is not set`)
    switch (d.provider) {
      case 'gemini':
        if (!apiKey) fail(`${where}: a gemini deployment needs apiKey or apiKeyEnv`)
        break
      case 'vertex': {
        if (!d.project || !d.location) fail(`${where}: a vertex deployment needs project and location`)
        if (apiKey)
          fail(`${where}: a vertex deployment authenticates with credentialsFile or Application Default Credentials, not an API key`)
        const wrong = d.credentialsFile ? checkCredentials(d.credentialsFile) : undefined
        if (wrong) fail(`${where}: ${wrong}`)
        if (!d.credentialsFile && !adcAvailable(env)) {
          fail(
            `${where}: no credentialsFile and no Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud auth application-default login)`
          )
        }
        break
      }
      case 'openai':
        if (!d.baseUrl) fail(`${where}: an openai deployment needs baseUrl (the server's /v1 URL)`)
        break
    }
    const { apiKeyEnv: _, apiKey: __, weight, ...rest } = d
    return { ...rest, weight: weight ?? 1, ...(apiKey ? { apiKey } : {}) }
  })

  const aliases = [...new Set(deployments.map((d) => d.alias))]
  const fallbacks = file.fallbacks ?? {}
  for (const [alias, list] of Object.entries(fallbacks)) {
    if (!aliases.includes(alias)) fail(`fallbacks: ${JSON.stringify(alias)} is not an alias of any deployment`)
    for (const to of list) {
      if (!aliases.includes(to)) fail(`fallbacks/${alias}: ${JSON.stringify(to)} is not an alias of any deployment`)
      if (to === alias) fail(`fallbacks/${alias}: an alias cannot fall back to itself`)
    }
  }
  return { deployments, fallbacks, aliases }
}
