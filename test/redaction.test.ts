// No provider text carries a secret to a client or a log line: the gateway's own keys and tokens
// (whole, in parts, JSON-escaped or URL-encoded) and anything shaped like a key are redacted from
// every upstream error the gateway relays, on every route and for every provider.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { errorCodes } from '../src/errors.js'
import { Redactor, SHAPES_ONLY } from '../src/wire/redact.js'
import { maskedKey } from '../src/simulator/credentials.js'
import { providerDetail, statusFailure } from '../workers/upstream.js'
import { startGateway, type TestGateway } from './helpers/gateway.js'
import { postChat, readSse, terminal } from './helpers/sse.js'
import { fleet, serviceAccountFile, upstreamsFile } from './helpers/upstreams.js'

const GRAM = 8
/** Every run of GRAM characters of `secret` found in `text`. */
const leaked = (text: string, secret: string): string[] => {
  const found: string[] = []
  for (let i = 0; i + GRAM <= secret.length; i++) if (text.includes(secret.slice(i, i + GRAM))) found.push(secret.slice(i, i + GRAM))
  return found
}

const chars = (alphabet: string, min: number, max: number) =>
  fc.array(fc.constantFrom(...Array.from(alphabet)), { minLength: min, maxLength: max }).map((a) => a.join(''))
const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
const KEY_CHARS = `${BASE62}_-`
/** What configured secrets are made of: base64 and base64url, so that URL-encoding changes some. */
const SECRET_CHARS = `${KEY_CHARS}+/=.`

const hex = (c: string) => c.charCodeAt(0).toString(16).padStart(2, '0')
/** A secret as it may appear in provider text: whole, cut up by other text, escaped, encoded, behind a prefix. */
const embedding = (secret: string) =>
  fc.oneof(
    fc.constant(secret),
    fc
      .tuple(fc.array(fc.nat(secret.length), { maxLength: 3 }), fc.array(fc.string({ maxLength: 6 }), { minLength: 3, maxLength: 3 }))
      .map(([cuts, fillers]) => {
        const at = [...new Set([0, ...cuts, secret.length])].sort((a, b) => a - b)
        return at
          .slice(1)
          .map((end, i) => secret.slice(at[i], end) + (fillers[i] ?? ''))
          .join('')
      }),
    fc.array(fc.boolean(), { minLength: secret.length, maxLength: secret.length }).map((which) =>
      Array.from(secret)
        .map((c, i) => (which[i] ? `\\u00${hex(c)}` : c))
        .join('')
    ),
    fc.array(fc.boolean(), { minLength: secret.length, maxLength: secret.length }).map((which) =>
      Array.from(secret)
        .map((c, i) => (which[i] ? `%${hex(c).toUpperCase()}` : c))
        .join('')
    ),
    fc.constant(encodeURIComponent(secret)),
    fc.constant(JSON.stringify(secret).slice(1, -1)),
    fc.constantFrom(`api_key:${secret}`, `Bearer ${secret}`, `key=${secret}&alt=sse`, `'${secret}'`, maskedKey(secret))
  )

/** Key-shaped strings nobody configured: what a provider may quote of other credentials. `secret` is the part that must go. */
const keyShaped = fc.oneof(
  chars(KEY_CHARS, 35, 35).map((k) => ({ text: `AIza${k}`, secret: `AIza${k}` })),
  chars(BASE62, 32, 48).map((k) => ({ text: ` sk-proj-${k} `, secret: `sk-proj-${k}` })),
  chars(`${KEY_CHARS}.`, 40, 80).map((k) => ({ text: `ya29.${k}`, secret: `ya29.${k}` })),
  chars(KEY_CHARS, 16, 40).map((k) => ({ text: `Consumer 'api_key:${k}'`, secret: k })),
  chars(BASE62, 20, 40).map((k) => ({ text: `Authorization: Bearer ${k}`, secret: k })),
  // A long random token: letters of both cases and digits, in any order.
  fc
    .tuple(chars('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 8, 16), chars('abcdefghijklmnopqrstuvwxyz', 8, 16), chars('0123456789', 8, 16))
    .chain(([u, l, d]) =>
      fc.shuffledSubarray([...Array.from(u), ...Array.from(l), ...Array.from(d)], { minLength: u.length + l.length + d.length })
    )
    .map((a) => ({ text: ` ${a.join('')} `, secret: a.join('') }))
)

/** Provider text: the secrets' embeddings and key shapes at random places among arbitrary text. */
const providerText = (secrets: string[]) =>
  fc
    .tuple(
      fc.array(fc.oneof(...secrets.map(embedding)), { minLength: 1, maxLength: 4 }),
      fc.array(keyShaped, { maxLength: 3 }),
      fc.array(fc.string({ maxLength: 30 }), { minLength: 8, maxLength: 8 })
    )
    .map(([embedded, shaped, fillers]) => {
      const pieces = [...embedded, ...shaped.map((s) => s.text)]
      return { text: pieces.map((p, i) => (fillers[i] ?? '') + p).join('') + (fillers[7] ?? ''), shaped: shaped.map((s) => s.secret) }
    })

describe('the redactor', () => {
  test('no run of 8 characters of a configured secret, nor of a key-shaped string, survives', () => {
    const secret = chars(SECRET_CHARS, 8, 48).filter((s) => leaked('[redacted]', s).length === 0)
    fc.assert(
      fc.property(
        fc.array(secret, { minLength: 1, maxLength: 3 }).chain((secrets) => fc.tuple(fc.constant(secrets), providerText(secrets))),
        ([secrets, { text, shaped }]) => {
          const redactor = new Redactor(secrets)
          const outputs = [
            redactor.redact(text),
            providerDetail(text, redactor),
            statusFailure(403, text, undefined, redactor).error.message
          ]
          for (const out of outputs) for (const s of [...secrets, ...shaped]) expect(leaked(out, s), out).toEqual([])
          // The front redacts what the worker redacted: nothing changes the second time.
          expect(redactor.redact(outputs[0]!)).toBe(outputs[0])
        }
      ),
      { numRuns: 500 }
    )
  })

  test.each([
    ['Authorization: Bearer abcDEF123456ghi', 'Authorization: Bearer [redacted]'],
    ['token=hunter22', 'token=[redacted]'],
    ["Consumer 'api_key:some-key-value' has been suspended.", "Consumer 'api_key:[redacted]' has been suspended."]
  ])('a credential after its name is redacted: %s', (text, out) => {
    expect(SHAPES_ONLY.redact(text)).toBe(out)
  })

  test('a token minted at run time is a secret too', () => {
    const redactor = new Redactor(['configured-key-0001'])
    redactor.mint('vertexaccesstokenwithnothingrandomlooking')
    expect(redactor.redact('denied for vertexaccesstokenwithnothingrandomlooking')).toBe('denied for [redacted]')
  })

  test.each([
    'You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.',
    'models/gemini-2.0-flash-thinking-exp-01-21 is not found for API version v1beta, or is not supported for generateContent.',
    'Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 10 (GenerateRequestsPerMinutePerProjectPerModel-FreeTier)',
    'API key not valid. Please pass a valid API key.',
    "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (8000 in the messages, 1000 in the completion).",
    'Token limit exceeded for this request.',
    'Basic authentication is not supported; use a key.',
    'API key: invalid or expired.',
    // The gateway's own words pass through the same redaction (the front's last line of defence).
    'No first token from the model provider in time.',
    ...Object.values(errorCodes).map((c) => c.message)
  ])('plain prose is left as it is: %s', (text) => {
    expect(new Redactor(['AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW']).redact(text)).toBe(text)
  })
})

// ─── Through real gateways: every route, every provider ────────────────────────────────────────

/** A provider that answers every generate call with whatever the current case says (and mints Vertex tokens). */
async function fakeProvider(token: string) {
  let answer = { status: 500, body: '{}', type: 'application/json' }
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    req.on('end', () => {
      if (req.url === '/token') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, expires_in: 3600 }))
        return
      }
      res.writeHead(answer.status, { 'content-type': answer.type }).end(answer.body)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    answer: (a: typeof answer) => {
      answer = a
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

const random = (alphabet: string, n: number) =>
  Array.from({ length: n }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join('')
const SECRETS = {
  gemini: `AIza${random(KEY_CHARS, 35)}`,
  openai: `sk-proj-${random(BASE62, 40)}`,
  // GEMINI_API_KEY: known to the front only (deployments come from the file), base64 so that encodings differ.
  env: random(SECRET_CHARS, 40),
  // Lower case only: not random-looking, so only learning it when minted keeps it out.
  vertex: `vtok${random('abcdefghijklmnopqrstuvwxyz', 44)}`
}

describe('through the gateway', () => {
  let g: TestGateway
  let provider: Awaited<ReturnType<typeof fakeProvider>>

  beforeAll(async () => {
    provider = await fakeProvider(SECRETS.vertex)
    const dir = mkdtempSync(join(tmpdir(), 'redaction-'))
    g = await startGateway(
      {
        UPSTREAM_RETRIES: '0',
        GEMINI_API_KEY: SECRETS.env,
        UPSTREAM_COOLDOWN_MS: '0',
        UPSTREAMS_FILE: upstreamsFile({
          deployments: [
            { id: 'g', provider: 'gemini', alias: 'g', model: 'gemini-2.5-flash', apiKey: SECRETS.gemini, baseUrl: provider.url },
            { id: 'o', provider: 'openai', alias: 'o', model: 'local', apiKey: SECRETS.openai, baseUrl: `${provider.url}/v1` },
            {
              id: 'v',
              provider: 'vertex',
              alias: 'v',
              model: 'gemini-2.5-flash',
              project: 'citizens-prod',
              location: 'us-central1',
              baseUrl: provider.url,
              credentialsFile: serviceAccountFile(dir, `${provider.url}/token`)
            }
          ]
        })
      },
      {},
      { logs: true }
    )
  })
  afterAll(async () => {
    await g.close()
    await provider.close()
  })

  const ROUTES = ['api/chat', 'v1 json', 'v1 stream'] as const
  async function ask(route: (typeof ROUTES)[number], model: string): Promise<{ text: string; status: number }> {
    if (route === 'api/chat') {
      const r = await postChat(g.url, { message: 'hello', model })
      expect(terminal(r).map((e) => e.event)).toEqual(['error'])
      return { text: r.raw, status: r.status }
    }
    const res = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], stream: route === 'v1 stream' })
    })
    const r = await readSse(res)
    return { text: r.raw, status: r.status }
  }

  test('arbitrary provider error bodies quoting the secrets reach neither the client nor the log', async () => {
    const secrets = Object.values(SECRETS)
    const body = (model: string, status: number, message: string, shape: number) => {
      if (model !== 'o') return JSON.stringify({ error: { code: status, message, status: 'PERMISSION_DENIED', details: [] } })
      return [
        JSON.stringify({ error: { message, type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }),
        JSON.stringify({ error: message }),
        JSON.stringify({ message }),
        message
      ][shape]!
    }
    // A provider can quote the configured keys (the worker knows them all), and an access token only
    // once it was sent one: the Vertex deployment's.
    const quotable = (model: string) => (model === 'v' ? secrets : secrets.filter((s) => s !== SECRETS.vertex))
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('g', 'o', 'v').chain((model) => fc.tuple(providerText(quotable(model)), fc.constant(model))),
        fc.constantFrom(...ROUTES),
        fc.constantFrom(400, 401, 403, 404, 429, 500, 503),
        fc.nat(3),
        async ([{ text: message, shaped }, model], route, status, shape) => {
          const logged = g.logs.length
          provider.answer({ status, body: body(model, status, message, shape), type: shape === 3 ? 'text/plain' : 'application/json' })
          const { text } = await ask(route, model)
          const logs = JSON.stringify(g.logs.slice(logged))
          for (const s of [...secrets, ...shaped]) {
            expect(leaked(text, s), text).toEqual([])
            expect(leaked(logs, s), logs).toEqual([])
          }
        }
      ),
      { numRuns: 60 }
    )
    // The Vertex deployment did mint its token (so the runs above could quote it).
    expect(g.logs.some((l) => l.deployment === 'v')).toBe(true)
  })
})

describe('the simulator quotes keys as the real services do, and the gateway redacts them', () => {
  const { sim, gateway: simGateway } = fleet()
  const geminiKey = `AIza${random(KEY_CHARS, 35)}`
  const openAiKey = `sk-abc1${random(BASE62, 40)}wxyz`

  test.each([
    ['gemini', 'key-suspended', 403, `Consumer 'api_key:[redacted]' has been suspended`],
    ['openai', 'key-suspended', 403, `Consumer 'api_key:[redacted]' has been suspended`],
    ['openai', 'bad-key', 401, 'Incorrect API key provided: [redacted]'],
    ['gemini', 'bad-key', 400, 'API key not valid']
  ])('%s [[sim:%s]]: the simulator answers %i quoting the key; the error event says "%s"', async (provider, directive, status, said) => {
    const s = await sim()
    const key = provider === 'gemini' ? geminiKey : openAiKey
    // What the simulator itself answers, as a provider would.
    const direct =
      provider === 'gemini'
        ? await fetch(`${s.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-goog-api-key': key },
            body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: `[[sim:${directive}]]` }] }] })
          })
        : await fetch(`${s.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
            body: JSON.stringify({ model: 'local', messages: [{ role: 'user', content: `[[sim:${directive}]]` }], stream: true })
          })
    expect(direct.status).toBe(status)
    const quoted = await direct.text()
    if (directive === 'key-suspended') expect(quoted).toContain(key)
    if (directive === 'bad-key' && provider === 'openai') expect(quoted).toContain(maskedKey(key))
    if (provider === 'gemini') expect(JSON.parse(quoted).error.status).toBe(status === 403 ? 'PERMISSION_DENIED' : 'INVALID_ARGUMENT')

    const deployment =
      provider === 'gemini'
        ? { id: 'd', provider, alias: 'chat', model: 'gemini-2.5-flash', apiKey: key, baseUrl: s.url }
        : { id: 'd', provider, alias: 'chat', model: 'local', apiKey: key, baseUrl: `${s.url}/v1` }
    const g = await simGateway({ UPSTREAMS_FILE: upstreamsFile({ deployments: [deployment] }) })
    const r = await postChat(g.url, { message: `[[sim:${directive}]]`, model: 'chat' })
    const end = terminal(r)
    expect(end.map((e) => e.event)).toEqual(['error'])
    expect(end[0]!.json.code).toBe('upstream_error')
    expect(end[0]!.json.message).toContain(said)
    expect(leaked(r.raw, key)).toEqual([])
    expect(r.raw).not.toContain(maskedKey(key))
    expect(leaked(JSON.stringify(g.logs), key)).toEqual([])
  })
})
