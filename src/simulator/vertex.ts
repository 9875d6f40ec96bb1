// Vertex AI as the simulator speaks it: the publisher-model paths, authenticated by an OAuth 2 access
// token that its POST /token issues for a service account's signed JWT (RFC 7523, the grant a key
// file's token_uri is called with). The JWT's claims are checked, not its signature: the simulator
// has no registry of service-account public keys.
import { randomBytes } from 'node:crypto'

export const VERTEX_PATH =
  /^\/(?:v1|v1beta1)\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/google\/models\/([^/:]+):(streamGenerateContent|generateContent)$/

export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
const TOKEN_TTL_S = 3_600
const CLOUD_PLATFORM = 'https://www.googleapis.com/auth/cloud-platform'

export const UNAUTHENTICATED = JSON.stringify({
  error: {
    code: 401,
    message:
      'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.',
    status: 'UNAUTHENTICATED'
  }
})

const decode = (part: string | undefined): Record<string, unknown> | undefined => {
  try {
    const value: unknown = JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8'))
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

export class TokenIssuer {
  /** Access token → the service account it was issued to, and when it expires. */
  readonly #tokens = new Map<string, { account: string; expiresAt: number }>()
  issued = 0

  /** POST /token with a form body: the status and JSON body Google's token endpoint would answer. */
  issue(form: string): { status: number; body: string } {
    const params = new URLSearchParams(form)
    const refuse = (description: string) => ({
      status: 400,
      body: JSON.stringify({ error: 'invalid_grant', error_description: description })
    })
    if (params.get('grant_type') !== JWT_BEARER) {
      return { status: 400, body: JSON.stringify({ error: 'unsupported_grant_type', error_description: 'Invalid grant_type.' }) }
    }
    const [head, body, signature] = (params.get('assertion') ?? '').split('.')
    const header = decode(head)
    const claims = decode(body)
    if (header?.alg !== 'RS256' || !claims || !signature) return refuse('Invalid JWT.')
    const now = Date.now() / 1000
    const { iss, scope, aud, exp, iat } = claims
    if (typeof iss !== 'string' || iss === '') return refuse('Invalid JWT: no issuer.')
    if (typeof aud !== 'string' || !aud.endsWith('/token')) return refuse('Invalid JWT: Token must be intended for the token endpoint.')
    if (typeof scope !== 'string' || !scope.split(' ').includes(CLOUD_PLATFORM))
      return refuse('Invalid OAuth scope or ID token audience provided.')
    if (typeof exp !== 'number' || typeof iat !== 'number' || exp < now || exp - iat > TOKEN_TTL_S) {
      return refuse('Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.')
    }
    const token = `ya29.sim-${randomBytes(24).toString('base64url')}`
    this.#tokens.set(token, { account: iss, expiresAt: Date.now() + TOKEN_TTL_S * 1000 })
    this.issued++
    return { status: 200, body: JSON.stringify({ access_token: token, expires_in: TOKEN_TTL_S, token_type: 'Bearer' }) }
  }

  /** The service account of a valid `Authorization: Bearer` header, or undefined. */
  account(authorization: string | undefined): string | undefined {
    const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1]
    const entry = token === undefined ? undefined : this.#tokens.get(token)
    return entry && entry.expiresAt > Date.now() ? entry.account : undefined
  }
}
