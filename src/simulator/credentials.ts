// Refusals about the caller's credential, worded as the real services word them. Some quote the
// credential: Gemini names a suspended key in full, OpenAI-compatible servers a masked one. These are
// what a gateway must never relay to its own clients.
import type { Directives } from './directives.js'
import { openAiErrorBody } from './openai.js'

export interface Refusal {
  status: number
  body: string
}

/** The key or token a request carried: `x-goog-api-key`, or an `Authorization: Bearer` header's credential. */
export const credentialOf = (header: string): string => header.replace(/^Bearer\s+/i, '')

/** OpenAI's masking: the first few characters, asterisks, the last four (`sk-abc1****wxyz`). */
export function maskedKey(key: string): string {
  const head = Math.min(7, Math.floor(key.length / 3))
  const tail = Math.min(4, Math.floor(key.length / 4))
  return `${key.slice(0, head)}****${tail > 0 ? key.slice(-tail) : ''}`
}

const errorInfo = (reason: string, metadata: Record<string, string>) => ({
  '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
  reason,
  domain: 'googleapis.com',
  metadata: { service: 'generativelanguage.googleapis.com', ...metadata }
})

/** `key-suspended` or `bad-key`, or undefined when the request asks for neither. */
export function credentialRefusal(d: Directives, wire: 'gemini' | 'openai', caller: string): Refusal | undefined {
  const key = credentialOf(caller)
  if (d.keySuspended) {
    const message = `Permission denied: Consumer 'api_key:${key}' has been suspended.`
    if (wire === 'openai') return { status: 403, body: openAiErrorBody(403, message) }
    const details = [errorInfo('CONSUMER_SUSPENDED', { consumer: 'projects/1089245117341' })]
    return { status: 403, body: JSON.stringify({ error: { code: 403, message, status: 'PERMISSION_DENIED', details } }) }
  }
  if (d.badKey) {
    if (wire === 'openai') {
      const message = `Incorrect API key provided: ${maskedKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`
      return {
        status: 401,
        body: JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } })
      }
    }
    const message = 'API key not valid. Please pass a valid API key.'
    const details = [errorInfo('API_KEY_INVALID', {})]
    return { status: 400, body: JSON.stringify({ error: { code: 400, message, status: 'INVALID_ARGUMENT', details } }) }
  }
  return undefined
}
