// A Vertex AI access token for a service account, minted once per worker and reused until five
// minutes before it expires (google-auth-library's eager refresh), never per request: an
// RS256-signed JWT exchanged at the key file's token_uri (RFC 7523, the JWT-bearer grant).
// google-auth-library's own JWT client posts to oauth2.googleapis.com whatever token_uri says
// (gtoken's GOOGLE_TOKEN_URL), so the exchange is done here and handed to the SDK as an
// OAuth2Client that calls it through its refreshHandler. Nothing of the key leaves this file.
import { createSign } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { OAuth2Client } from 'google-auth-library'
import { request } from 'undici'

const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token'
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
const SCOPE = 'https://www.googleapis.com/auth/cloud-platform'
const LIFETIME_S = 3_600

interface ServiceAccountKey {
  client_email: string
  private_key: string
  private_key_id?: string
  token_uri?: string
}

const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')

export function serviceAccountClient(credentialsFile: string): OAuth2Client {
  const key = JSON.parse(readFileSync(credentialsFile, 'utf8')) as ServiceAccountKey
  const tokenUri = key.token_uri ?? GOOGLE_TOKEN_URI
  // Streams that start together while the token is missing or expiring share one exchange.
  let pending: Promise<{ access_token: string; expiry_date: number }> | undefined

  const exchange = async () => {
    const now = Math.floor(Date.now() / 1000)
    const header = base64url({ alg: 'RS256', typ: 'JWT', ...(key.private_key_id ? { kid: key.private_key_id } : {}) })
    const claims = base64url({ iss: key.client_email, scope: SCOPE, aud: tokenUri, iat: now, exp: now + LIFETIME_S })
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key.private_key, 'base64url')
    const res = await request(tokenUri, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: JWT_BEARER, assertion: `${header}.${claims}.${signature}` }).toString()
    })
    const body = (await res.body.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; error_description?: string }
    if (res.statusCode !== 200 || !body.access_token) {
      throw new Error(`The token endpoint answered ${res.statusCode}${body.error_description ? ` (${body.error_description})` : ''}`)
    }
    return { access_token: body.access_token, expiry_date: Date.now() + (body.expires_in ?? LIFETIME_S) * 1000 }
  }

  const client = new OAuth2Client()
  client.refreshHandler = () => {
    pending ??= exchange().finally(() => {
      pending = undefined
    })
    return pending
  }
  return client
}
