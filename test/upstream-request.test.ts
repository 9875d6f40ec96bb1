// The gateway reader builds Gemini's request itself, once per deployment where it can; what it sends
// must be what the SDK would send for the same turn: URL, key or token, and the body field for field.
import { GoogleGenAI } from '@google/genai'
import { OAuth2Client } from 'google-auth-library'
import { describe, expect, test } from 'vitest'
import type { UpstreamRequest } from '../src/protocol.js'
import { configOf, toGemini, wireBody } from '../workers/gemini.js'

/** What the SDK sends for `request`, its fetch replaced by one that records and answers nothing. */
async function sdkSends(ai: GoogleGenAI, request: UpstreamRequest): Promise<{ url: string; headers: Headers; body: unknown }> {
  let sent: { url: string; headers: Headers; body: unknown } | undefined
  await ai.models.generateContentStream({
    model: request.model,
    contents: request.contents.map(toGemini),
    config: {
      ...configOf(request),
      httpOptions: {
        fetch: async (url, init) => {
          sent = { url: String(url), headers: new Headers(init?.headers), body: JSON.parse(init?.body as string) }
          return new Response(null, { status: 200 })
        }
      }
    }
  })
  if (!sent) throw new Error('the SDK sent nothing')
  return sent
}

const turns: Array<[string, UpstreamRequest]> = [
  ['a plain turn', { model: 'gemini-2.5-flash', contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }],
  [
    'everything at once',
    {
      model: 'gemini-3-flash-preview',
      system: 'be brief',
      generation: { temperature: 0.4, topP: 0.9, topK: 20, maxOutputTokens: 512 },
      contents: [
        { role: 'user', parts: [{ text: 'weather?' }] },
        {
          role: 'model',
          parts: [{ functionCall: { name: 'get_weather', args: { city: 'Lisbon' }, id: 'ab12cd34' }, thoughtSignature: 'c2ln' }]
        },
        { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { celsius: 21 }, id: 'ab12cd34' } }] }
      ],
      tools: [{ name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }],
      toolChoice: { name: 'get_weather' },
      thinking: { level: 'low', include: true }
    }
  ],
  [
    'a gateway call id is not sent; a budget; tool choice none',
    {
      model: 'gemini-2.5-flash',
      contents: [
        { role: 'user', parts: [{ text: 'x' }] },
        { role: 'model', parts: [{ functionCall: { name: 'f', args: {}, id: 'gwc_0123456789abcdef' } }] },
        { role: 'user', parts: [{ functionResponse: { name: 'f', response: { ok: true }, id: 'gwc_0123456789abcdef' } }] }
      ],
      tools: [{ name: 'f' }],
      toolChoice: 'none',
      thinking: { budget: 1024 }
    }
  ]
]

describe('the body is the one the SDK sends', () => {
  const studio = new GoogleGenAI({ apiKey: 'k', httpOptions: { apiVersion: 'v1beta', baseUrl: 'http://127.0.0.1:1' } })
  const auth = new OAuth2Client()
  auth.setCredentials({ access_token: 'token', expiry_date: Date.now() + 3_600_000 })
  const vertex = new GoogleGenAI({
    vertexai: true,
    project: 'p',
    location: 'southamerica-east1',
    googleAuthOptions: { authClient: auth },
    httpOptions: { apiVersion: 'v1', baseUrl: 'http://127.0.0.1:1' }
  })
  test.each(turns)('AI Studio and Vertex AI: %s', async (_name, request) => {
    expect(wireBody(request)).toEqual((await sdkSends(studio, request)).body)
    expect(wireBody(request)).toEqual((await sdkSends(vertex, request)).body)
  })
})
