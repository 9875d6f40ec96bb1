// Every shape of stream Gemini has been recorded sending (../shared/real-gemini, read and rewritten
// here with our own content): served byte for byte by a raw HTTP server, read through the whole
// gateway with each reader, and compared with what Google's SDK itself reads from the same bytes.
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ApiError, GoogleGenAI } from '@google/genai'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { postChat, type ChatResult } from './helpers/sse.js'
import { startGateway, type TestGateway } from './helpers/gateway.js'

type Json = Record<string, unknown>
interface Shape {
  /** The HTTP answer: SSE events (objects are framed `data: <json>` + CRLF CRLF) or raw text. */
  events?: Array<Json | string>
  raw?: string
  status?: number
  type?: string
  /** What the gateway must relay beyond text and ending (which the SDK's reading decides). */
  calls?: Array<{ name: string; args: Json }>
  thoughts?: string
}

const SIG = 'CiQBjz1rX3Kx9mEXAMPLEsignature+/aBcD=='
const candidate = (parts: Json[] | undefined, extra: Json = {}) => ({
  candidates: [{ ...(parts ? { content: { parts, role: 'model' } } : {}), index: 0, ...extra }]
})
const usage = (prompt: number, out?: number, more: Json = {}) => ({
  usageMetadata: {
    promptTokenCount: prompt,
    ...(out === undefined ? {} : { candidatesTokenCount: out }),
    totalTokenCount: prompt + (out ?? 0),
    ...more
  }
})
const text = (t: string, extra: Json = {}) => ({ ...candidate([{ text: t }], extra), modelVersion: 'gemini-2.5-flash', responseId: 'r1' })
const ratings = [{ category: 'HARM_CATEGORY_HARASSMENT', probability: 'NEGLIGIBLE' }]
const stop = { finishReason: 'STOP' }
const partial = (path: string, value: Json, more = true) => ({
  functionCall: {
    partialArgs: [{ jsonPath: path, ...value, ...(more && 'stringValue' in value ? { willContinue: true } : {}) }],
    willContinue: true
  }
})

const shapes: Record<string, Shape> = {
  'gemini 2.5: text in chunks, STOP and usage on the last': {
    events: [
      { ...text('Tides rise'), ...usage(4, 2) },
      { ...text(' twice a day.', stop), ...usage(4, 5) }
    ]
  },
  'gemini 1.x: STOP and safety ratings on every chunk, no usage': {
    events: [
      { ...text('Once upon', { ...stop, safetyRatings: ratings }), promptFeedback: { safetyRatings: ratings } },
      text(' a time', { ...stop, safetyRatings: ratings }),
      text(' there was a lighthouse.', { ...stop, safetyRatings: ratings })
    ]
  },
  'RECITATION after earlier STOPs, on a chunk without content': {
    events: [
      text('Some text', { ...stop, citationMetadata: { citationSources: [{ startIndex: 0, endIndex: 4, uri: 'https://example.org' }] } }),
      text(' that is quoted', stop),
      candidate(undefined, { finishReason: 'RECITATION' })
    ]
  },
  'SAFETY in the chunk that carries the text': {
    events: [{ ...text('No', { finishReason: 'SAFETY', safetyRatings: [{ category: 'HARM_CATEGORY_HATE_SPEECH', probability: 'HIGH' }] }) }]
  },
  'a prompt blocked for SAFETY: no candidates': {
    events: [
      { promptFeedback: { blockReason: 'SAFETY', safetyRatings: [{ category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'HIGH' }] } }
    ]
  },
  'a prompt blocked as PROHIBITED_CONTENT, with usage': {
    events: [{ promptFeedback: { blockReason: 'PROHIBITED_CONTENT' }, ...usage(9) }]
  },
  'a prompt blocked by MODEL_ARMOR with a message': {
    events: [{ promptFeedback: { blockReason: 'MODEL_ARMOR', blockReasonMessage: 'Blocked by Model Armor.' }, ...usage(9) }]
  },
  'MODEL_ARMOR as the finish, without content': {
    events: [candidate(undefined, { finishReason: 'MODEL_ARMOR', finishMessage: 'Response blocked.' })]
  },
  'an empty content and no finish': { events: [{ candidates: [{ content: {}, index: 0 }], promptFeedback: { safetyRatings: ratings } }] },
  'LF framing, grounding metadata on a last chunk with empty content after STOP': {
    raw: [
      JSON.stringify({ ...text('The tallest', stop), ...usage(6, 2) }),
      JSON.stringify({ ...text(' mountain is Everest.', stop), ...usage(6, 6) }),
      JSON.stringify({
        candidates: [
          {
            content: {},
            index: 0,
            groundingMetadata: { webSearchQueries: ['tallest mountain'], groundingChunks: [{ web: { uri: 'test_uri_1', title: 'x' } }] }
          }
        ],
        ...usage(6, 6)
      })
    ]
      .map((j) => `data: ${j}\n\n`)
      .join('')
  },
  'multi-byte UTF-8 in spaced JSON': {
    raw: [
      '{ "candidates": [ { "content": { "parts": [ { "text": "潮汐は" } ], "role": "model" }, "finishReason": "STOP", "index": 0 } ] }',
      '{ "candidates": [ { "content": { "parts": [ { "text": "一日二回🌊" } ], "role": "model" }, "finishReason": "STOP", "index": 0 } ] }'
    ]
      .map((j) => `data: ${j}\r\n\r\n`)
      .join('')
  },
  'an unknown finishReason passes through': { events: [text('a'), text('b', { finishReason: 'FAKE_ENUM' })] },
  MAX_TOKENS: { events: [text('cut'), { ...text(' short', { finishReason: 'MAX_TOKENS' }), ...usage(3, 2) }] },
  'MALFORMED_FUNCTION_CALL with no content': {
    events: [{ ...candidate(undefined, { finishReason: 'MALFORMED_FUNCTION_CALL' }), ...usage(12) }]
  },
  'gemini 3: text, then an empty part with the signature and STOP': {
    events: [
      text('Four'),
      text(' it is.'),
      { ...candidate([{ text: '', thoughtSignature: SIG }], stop), ...usage(5, 3, { thoughtsTokenCount: 40 }) }
    ]
  },
  'thoughts, then text carrying the signature': {
    events: [
      { ...candidate([{ text: '**Weighing it up**\n\nFirst, ', thought: true }]), ...usage(8, undefined, { thoughtsTokenCount: 30 }) },
      { ...candidate([{ text: 'then second.', thought: true }]), ...usage(8, undefined, { thoughtsTokenCount: 60 }) },
      { ...candidate([{ text: 'The answer', thoughtSignature: SIG }]), ...usage(8, 2, { thoughtsTokenCount: 60 }) },
      { ...candidate([{ text: ' is yes.' }], stop), ...usage(8, 5, { thoughtsTokenCount: 60 }) }
    ],
    thoughts: '**Weighing it up**\n\nFirst, then second.'
  },
  'thoughts without signatures, an empty-text STOP last': {
    events: [
      candidate([{ text: 'Hmm. ', thought: true }]),
      candidate([{ text: 'Okay.', thought: true }]),
      candidate([{ text: 'Hello!' }]),
      { ...candidate([{ text: '' }], stop), ...usage(3, 2, { serviceTier: 'standard' }) }
    ],
    thoughts: 'Hmm. Okay.'
  },
  'a call with its signature, then an empty-text STOP': {
    events: [
      candidate([{ functionCall: { name: 'weather', args: { location: 'Lisbon' } }, thoughtSignature: SIG }]),
      candidate([{ text: '' }], stop)
    ],
    calls: [{ name: 'weather', args: { location: 'Lisbon' } }]
  },
  "text, then a call with Gemini's id, in one turn": {
    events: [
      text('Let me check.'),
      candidate([{ functionCall: { name: 'get_weather', args: { city: 'Porto' }, id: 'g1bmv6il' }, thoughtSignature: SIG }]),
      candidate([{ text: '' }], stop)
    ],
    calls: [{ name: 'get_weather', args: { city: 'Porto' } }]
  },
  'a call with nested args, STOP and finishMessage in the same chunk': {
    events: [
      candidate([{ functionCall: { name: 'search', args: { condition: { or: [{ term: 'x' }, { term: 'y' }] } } } }], {
        ...stop,
        finishMessage: 'Model generated function call(s).'
      })
    ],
    calls: [{ name: 'search', args: { condition: { or: [{ term: 'x' }, { term: 'y' }] } } }]
  },
  'parallel calls in one chunk': {
    events: [
      candidate(
        [
          { functionCall: { name: 'get_weather', args: { city: 'Faro' } }, thoughtSignature: SIG },
          { functionCall: { name: 'get_time', args: { zone: 'WET' } } }
        ],
        stop
      )
    ],
    calls: [
      { name: 'get_weather', args: { city: 'Faro' } },
      { name: 'get_time', args: { zone: 'WET' } }
    ]
  },
  'Vertex streamed arguments: two calls, string pieces joined, terminal {} parts': {
    events: [
      candidate([{ functionCall: { name: 'getWeather', willContinue: true }, thoughtSignature: SIG }]),
      candidate([partial('$.location', { stringValue: 'Bos' })]),
      candidate([partial('$.location', { stringValue: 'ton' })]),
      candidate([partial('$.location', { stringValue: '' }, false)]),
      candidate([{ functionCall: {} }]),
      candidate([{ functionCall: { name: 'getWeather', willContinue: true } }]),
      candidate([partial('$.location', { stringValue: 'Braga' }, false)]),
      { ...candidate([{ functionCall: {} }], stop), usageMetadata: { trafficType: 'PROVISIONED_THROUGHPUT' } }
    ],
    calls: [
      { name: 'getWeather', args: { location: 'Boston' } },
      { name: 'getWeather', args: { location: 'Braga' } }
    ]
  },
  'streamed array arguments whose terminal part never comes': {
    events: [
      candidate([{ functionCall: { name: 'writeItems', willContinue: true }, thoughtSignature: SIG }]),
      candidate([partial('$.operations[0].action', { stringValue: 'add' }, false)]),
      candidate([partial('$.operations[0].price', { numberValue: 0.5 }, false)]),
      candidate([partial('$.operations[1].action', { stringValue: 'remove' }, false)]),
      candidate([partial("$.operations[1]['item id']", { stringValue: 'pear_7' }, false)]),
      { ...candidate([{ text: '' }], stop), ...usage(40, 20) }
    ],
    calls: [
      {
        name: 'writeItems',
        args: {
          operations: [
            { action: 'add', price: 0.5 },
            { action: 'remove', 'item id': 'pear_7' }
          ]
        }
      }
    ]
  },
  'a thought, a call without args, then a streamed call': {
    events: [
      candidate([{ text: 'Reading the theme first.', thought: true }]),
      candidate([{ functionCall: { name: 'read_theme' }, thoughtSignature: SIG }]),
      candidate([{ functionCall: { name: 'read_screen', willContinue: true } }]),
      candidate([partial('$.id', { stringValue: 'A' })]),
      candidate([partial('$.id', { stringValue: '' }, false)]),
      candidate([{ functionCall: {} }]),
      candidate([{ text: '' }], stop)
    ],
    calls: [
      { name: 'read_theme', args: {} },
      { name: 'read_screen', args: { id: 'A' } }
    ],
    thoughts: 'Reading the theme first.'
  },
  'code execution: STOP mid-stream, more text after it': {
    events: [
      candidate([{ executableCode: { language: 'PYTHON', code: 'print(6*7)' }, thought: true }]),
      candidate([{ codeExecutionResult: { outcome: 'OUTCOME_OK', output: '42\n' }, thought: true }]),
      candidate([{ executableCode: { language: 'PYTHON', code: 'print(2**10)' } }], stop),
      candidate([{ codeExecutionResult: { outcome: 'OUTCOME_OK', output: '1024\n' } }]),
      text('Six times seven is 42'),
      text(', and 2**10 is 1024.'),
      { ...text('', stop), ...usage(10, 30, { toolUsePromptTokenCount: 50 }) }
    ]
  },
  'code execution on gemini 3: code with a signature, result, text, a signed empty STOP': {
    events: [
      candidate([{ executableCode: { language: 'PYTHON', code: 'print(1+1)' }, thoughtSignature: SIG }, { text: '' }]),
      candidate([{ codeExecutionResult: { outcome: 'OUTCOME_OK', output: '2\n' } }]),
      text('It is 2.'),
      candidate([{ text: '', thoughtSignature: SIG }], stop)
    ]
  },
  'a server-side tool: a call with STOP, its response, then text': {
    events: [
      candidate([{ functionCall: { name: 'weather_server_get_weather', args: { location: 'Coimbra' } } }], {
        ...stop,
        finishMessage: 'Model generated function call(s).'
      }),
      candidate([{ functionResponse: { name: 'weather_server_get_weather', response: { result: 'sunny' } } }]),
      text('It is sunny'),
      text(' in Coimbra.', stop)
    ],
    calls: [{ name: 'weather_server_get_weather', args: { location: 'Coimbra' } }]
  },
  'server-side toolCall and toolResponse parts, then text with grounding': {
    events: [
      candidate([{ toolCall: { toolType: 'FILE_SEARCH', args: { query: 'leases' } }, thoughtSignature: SIG }]),
      candidate([{ toolResponse: { toolType: 'FILE_SEARCH', response: { hits: 2 } }, thoughtSignature: SIG }]),
      text('Two leases'),
      candidate([{ text: '', thoughtSignature: SIG }], { ...stop, groundingMetadata: { groundingChunks: [] } })
    ]
  },
  'a usage-only chunk with no candidates': {
    events: [
      text('Hi'),
      text(' there', stop),
      { usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 2, totalTokenCount: 5, cachedContentTokenCount: 1 } }
    ]
  },
  'inline image data, then a content with only a role and STOP': {
    events: [
      text('Here is the image:'),
      candidate([{ inlineData: { mimeType: 'image/png', data: 'iVBORw0KGgo=' } }]),
      { candidates: [{ content: { role: 'model' }, finishReason: 'STOP', index: 0 }] }
    ]
  },
  'an empty 200 stream': { raw: '' },
  'a 404 answered as text/event-stream with a JSON body': {
    status: 404,
    raw:
      JSON.stringify({ error: { code: 404, message: 'models/nope is not found for API version v1beta.', status: 'NOT_FOUND' } }, null, 2) +
      '\n'
  }
}

const names = Object.keys(shapes)
let server: Server
let upstream: string
const readers: Record<'gateway' | 'sdk', TestGateway | undefined> = { gateway: undefined, sdk: undefined }

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (s: string) => (body += s))
    req.on('end', () => {
      const index = Number(/shape (\d+)/.exec(body)?.[1])
      const shape = shapes[names[index] ?? '']!
      res.writeHead(shape.status ?? 200, { 'content-type': shape.type ?? 'text/event-stream' })
      res.end(shape.raw ?? (shape.events ?? []).map((e) => `data: ${typeof e === 'string' ? e : JSON.stringify(e)}\r\n\r\n`).join(''))
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  upstream = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  for (const reader of ['gateway', 'sdk'] as const) {
    readers[reader] = await startGateway({
      GEMINI_API_KEY: 'test',
      GEMINI_BASE_URL: upstream,
      UPSTREAM_READER: reader,
      UPSTREAM_RETRIES: '0'
    })
  }
})
afterAll(async () => {
  for (const g of Object.values(readers)) await g?.close()
  server.closeAllConnections()
  server.close()
})

interface Reading {
  text: string
  ending: string
}

// The oracle's own list, not workers/upstream.ts's SAFETY_FINISH: a refusal the worker misses must
// show up as a difference (this is how MODEL_ARMOR's was found).
const SAFETY = new Set([
  'SAFETY',
  'RECITATION',
  'BLOCKLIST',
  'PROHIBITED_CONTENT',
  'SPII',
  'IMAGE_SAFETY',
  'IMAGE_PROHIBITED_CONTENT',
  'IMAGE_RECITATION',
  'MODEL_ARMOR'
])

/** What the SDK reads from the same bytes: answer text until a refusal, the last finishReason, or the error. */
async function sdkReading(index: number): Promise<Reading> {
  const ai = new GoogleGenAI({ apiKey: 'test', httpOptions: { baseUrl: upstream, apiVersion: 'v1beta' } })
  let text = ''
  let finish: string | undefined
  let refused: string | undefined
  try {
    for await (const chunk of await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: `shape ${index}` })) {
      const candidate = chunk.candidates?.[0]
      if (!refused)
        for (const part of candidate?.content?.parts ?? []) if (typeof part.text === 'string' && !part.thought) text += part.text
      finish = candidate?.finishReason ?? finish
      refused ??= chunk.promptFeedback?.blockReason ?? (finish && SAFETY.has(finish) ? finish : undefined)
    }
  } catch (err) {
    return { text, ending: err instanceof ApiError && err.status === 404 ? 'upstream_error' : `threw ${String(err)}` }
  }
  return { text, ending: refused ? 'safety_blocked' : (finish ?? 'FINISH_REASON_UNSPECIFIED') }
}

function gatewayReading(r: ChatResult) {
  const of = (name: string) => r.events.filter((e) => e.event === name)
  const end = r.events.at(-1)!
  return {
    text: of('chunk')
      .map((e) => e.json.text as string)
      .join(''),
    ending: end.event === 'done' ? (end.json.finishReason as string) : (end.json.code as string),
    calls: of('tool_call').map((e) => ({ name: e.json.name as string, args: e.json.args as Json })),
    thoughts: of('thought')
      .map((e) => e.json.text as string)
      .join('')
  }
}

describe('every recorded stream shape reads as the SDK reads it, through both readers', () => {
  test.each(names.map((name, i) => [name, i] as const))('%s', async (name, index) => {
    const shape = shapes[name]!
    const [gateway, sdk] = await Promise.all(
      (['gateway', 'sdk'] as const).map(async (reader) =>
        gatewayReading(await postChat(readers[reader]!.url, { message: `shape ${index}`, history: [], thinking: { include: true } }))
      )
    )
    expect(gateway).toEqual(sdk)
    expect({ text: gateway!.text, ending: gateway!.ending }).toEqual(await sdkReading(index))
    expect(gateway!.calls).toEqual(shape.calls ?? [])
    expect(gateway!.thoughts).toBe(shape.thoughts ?? '')
  })
})
