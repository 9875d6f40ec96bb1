// Tool calling and thinking on POST /api/chat, end to end: the real SDK in the worker, the simulator
// upstream speaking Gemini's shapes, and what the second upstream request carried (GET /__sim/last).
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { postChat, replyText, terminal, type ChatResult, type SseEvent } from '../helpers/sse.js'
import { startGateway, type TestGateway } from '../helpers/gateway.js'

const GEMINI_3 = 'gemini-3-flash-preview'
let gw: TestGateway
beforeAll(async () => {
  gw = await startGateway({ UPSTREAM_RETRIES: '0', ALLOWED_MODELS: `gemini-2.5-flash,${GEMINI_3}` }, { tokens: 6 })
})
afterAll(async () => {
  await gw.close()
})

const tools = [
  {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, days: { type: 'integer', minimum: 1, maximum: 3 } },
      required: ['city']
    }
  },
  { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } }
]
const ASK = 'weather and time in Lisbon? [[sim:tools=get_weather,get_time]]'

const eventsOf = (r: ChatResult, name: string) => r.events.filter((e) => e.event === name)
const callsOf = (r: ChatResult) =>
  eventsOf(r, 'tool_call').map((e) => e.json as { id: string; name: string; args: object; signature?: string })
const results = (r: ChatResult) =>
  callsOf(r).map((c) => ({ id: c.id, name: c.name, result: c.name === 'get_time' ? '09:30' : { celsius: 21 } }))
async function lastUpstream(): Promise<{ contents: Array<{ role: string; parts: any[] }> } & Record<string, any>> {
  return ((await (await fetch(`${gw.sim.url}/__sim/last`)).json()) as { body: any }).body
}
const ids = (r: ChatResult) => r.events.filter((e) => e.id !== undefined).map((e) => Number(e.id))

describe('a two-call Gemini 3 tool loop', () => {
  test('with a session: parallel calls with distinct ids, the results answered, the signatures sent back as received', async () => {
    const first = await postChat(gw.url, { message: ASK, model: GEMINI_3, tools })
    expect(first.events.map((e) => e.event)).toEqual(['meta', 'tool_call', 'tool_call', 'done'])
    const calls = callsOf(first)
    expect(calls.map((c) => c.name)).toEqual(['get_weather', 'get_time'])
    expect(new Set(calls.map((c) => c.id)).size).toBe(2)
    expect(calls[0]!.signature).toMatch(/^[A-Za-z0-9+/]+=*$/) // Gemini signs the first call of a parallel set
    expect(calls[1]!.signature).toBeUndefined()
    expect(typeof (calls[0]!.args as { city: unknown }).city).toBe('string')
    expect(terminal(first)[0]!.json).toMatchObject({ finishReason: 'STOP', toolCalls: 2 })
    expect(ids(first)).toEqual([1, 2])
    const sessionId = first.events[0]!.json.sessionId as string

    const second = await postChat(gw.url, { sessionId, model: GEMINI_3, tools, toolResults: results(first) })
    expect(terminal(second)[0]!.event).toBe('done')
    expect(replyText(second).length).toBeGreaterThan(0)
    expect(terminal(second)[0]!.json.toolCalls).toBeUndefined()
    const sent = await lastUpstream()
    expect(sent.contents.map((c) => c.role)).toEqual(['user', 'model', 'user'])
    // The model's turn exactly as it came: both calls, Gemini's ids, the signature on the first part only.
    expect(sent.contents[1]!.parts).toEqual(
      calls.map((c) => ({
        functionCall: { name: c.name, args: c.args, id: c.id },
        ...(c.signature ? { thoughtSignature: c.signature } : {})
      }))
    )
    expect(sent.contents[2]!.parts).toEqual([
      { functionResponse: { name: 'get_weather', id: calls[0]!.id, response: { celsius: 21 } } },
      { functionResponse: { name: 'get_time', id: calls[1]!.id, response: { result: '09:30' } } }
    ])

    // The session kept the text turn too, with its signed last part.
    const third = await postChat(gw.url, { sessionId, model: GEMINI_3, message: 'thanks!' })
    expect(terminal(third)[0]!.event).toBe('done')
    const again = await lastUpstream()
    expect(again.contents.map((c) => c.role)).toEqual(['user', 'model', 'user', 'model', 'user'])
    expect(again.contents[3]!.parts.at(-1)).toEqual({ text: '', thoughtSignature: expect.any(String) })
    expect(again.contents[3]!.parts.map((p: { text?: string }) => p.text ?? '').join('')).toBe(replyText(second))
  })

  test('stateless: the same loop with the calls and their signatures in history', async () => {
    const first = await postChat(gw.url, { message: ASK, model: GEMINI_3, tools, history: [] })
    const calls = callsOf(first)
    const history = [
      { role: 'user', text: ASK },
      { role: 'model', toolCalls: calls }
    ]
    const second = await postChat(gw.url, { model: GEMINI_3, tools, history, toolResults: results(first) })
    expect(terminal(second)[0]!.event).toBe('done')
    expect((await lastUpstream()).contents[1]!.parts[0].thoughtSignature).toBe(calls[0]!.signature)

    // Without the signature Gemini 3 refuses the request, and the client gets that as an error event.
    const unsigned = [history[0], { role: 'model', toolCalls: calls.map(({ signature: _, ...c }) => c) }]
    const refused = await postChat(gw.url, { model: GEMINI_3, tools, history: unsigned, toolResults: results(first) })
    expect(terminal(refused)[0]!.json).toMatchObject({ code: 'upstream_error', retryable: false })
    expect(terminal(refused)[0]!.json.message).toMatch(/missing a thought_signature/)
  })

  test('a call Gemini sent without an id gets a gateway id, which never goes upstream', async () => {
    const first = await postChat(gw.url, { message: ASK, tools })
    const calls = callsOf(first)
    for (const c of calls) expect(c.id).toMatch(/^gwc_[A-Za-z0-9_-]{16}$/)
    const second = await postChat(gw.url, { sessionId: first.events[0]!.json.sessionId, tools, toolResults: results(first) })
    expect(terminal(second)[0]!.event).toBe('done')
    const sent = await lastUpstream()
    for (const part of [...sent.contents[1]!.parts, ...sent.contents[2]!.parts]) {
      expect(part.functionCall?.id ?? part.functionResponse?.id).toBeUndefined()
    }
  })
})

describe('tool settings reach Gemini', () => {
  test('declarations as parametersJsonSchema, and toolChoice as functionCallingConfig', async () => {
    await postChat(gw.url, { message: 'hi', tools, toolChoice: { name: 'get_time' }, history: [] })
    const sent = await lastUpstream()
    expect(sent.tools).toEqual([
      {
        functionDeclarations: [
          { ...tools[0], parametersJsonSchema: tools[0]!.parameters, parameters: undefined },
          { name: 'get_time', parametersJsonSchema: tools[1]!.parameters }
        ].map((d) => JSON.parse(JSON.stringify(d)))
      }
    ])
    expect(sent.toolConfig).toEqual({ functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_time'] } })
    for (const [choice, mode] of [
      ['auto', 'AUTO'],
      ['none', 'NONE'],
      ['required', 'ANY']
    ] as const) {
      await postChat(gw.url, { message: 'hi', tools, toolChoice: choice, history: [] })
      expect((await lastUpstream()).toolConfig).toEqual({ functionCallingConfig: { mode } })
    }
  })
})

describe('bad tool input is a documented 400 before anything is sent', () => {
  const call = { id: 'gwc_AAAAAAAAAAAAAAAA', name: 'get_weather', args: { city: 'Lisbon' } }
  const history = [
    { role: 'user', text: 'weather?' },
    { role: 'model', toolCalls: [call] }
  ]
  const cases: Array<[string, unknown, RegExp]> = [
    [
      'an unknown tool name in toolResults',
      { history, toolResults: [{ id: call.id, name: 'get_stock', result: 1 }] },
      /name 'get_stock' does not match call/
    ],
    [
      'a result whose id is no call',
      { history, toolResults: [{ id: 'nope', name: 'get_weather', result: 1 }] },
      /id 'nope' is not the id of a call/
    ],
    [
      'a name no call had',
      { history, toolResults: [{ id: 'nope', name: 'get_stock', result: 1 }] },
      /name 'get_stock' is not a tool the model called/
    ],
    [
      'results without a preceding call',
      { history: [], toolResults: [{ id: 'x', name: 'get_weather', result: 1 }] },
      /made no tool call to answer/
    ],
    ['results in a new session', { toolResults: [{ id: 'x', name: 'get_weather', result: 1 }] }, /made no tool call to answer/],
    [
      'a call left unanswered',
      {
        history: [history[0], { role: 'model', toolCalls: [call, { ...call, id: 'gwc_BBBBBBBBBBBBBBBB' }] }],
        toolResults: [{ id: call.id, name: 'get_weather', result: 1 }]
      },
      /must answer every call.*gwc_BBBBBBBBBBBBBBBB/
    ],
    [
      'a result given twice',
      {
        history,
        toolResults: [
          { id: call.id, name: 'get_weather', result: 1 },
          { id: call.id, name: 'get_weather', result: 2 }
        ]
      },
      /answered twice/
    ],
    [
      'results in history without calls before them',
      {
        message: 'hi',
        history: [
          { role: 'user', text: 'a' },
          { role: 'model', text: 'b' },
          { role: 'user', toolResults: [{ id: 'x', name: 'f', result: 1 }] }
        ]
      },
      /history\/2\/toolResults: the model's last turn made no tool call/
    ],
    ['toolCalls on a user turn', { message: 'hi', history: [{ role: 'user', toolCalls: [call] }] }, /only a model turn makes calls/],
    ['neither message nor toolResults', { history: [] }, /message, toolResults or both/],
    [
      'parameters that are not an object schema',
      { message: 'hi', tools: [{ name: 'f', parameters: { type: 'string' } }] },
      /parameters.type must be "object"/
    ],
    [
      'a type JSON Schema does not have',
      { message: 'hi', tools: [{ name: 'f', parameters: { type: 'object', properties: { a: { type: 'text' } } } }] },
      /properties.a.type "text" is not a JSON Schema type/
    ],
    [
      'required naming a property that is not there',
      { message: 'hi', tools: [{ name: 'f', parameters: { type: 'object', properties: {}, required: ['a'] } }] },
      /required names "a"/
    ],
    ['a tool declared twice', { message: 'hi', tools: [{ name: 'f' }, { name: 'f' }] }, /declared twice/],
    [
      'tools over the limit',
      { message: 'hi', tools: Array.from({ length: 129 }, (_, i) => ({ name: `t${i}` })) },
      /must NOT have more than 128 items/
    ],
    ['a bad tool name', { message: 'hi', tools: [{ name: '9lives' }] }, /tools\/0\/name must match pattern/],
    ['toolChoice naming no declared tool', { message: 'hi', tools: [{ name: 'f' }], toolChoice: { name: 'g' } }, /toolChoice names 'g'/],
    ['toolChoice required without tools', { message: 'hi', toolChoice: 'required' }, /toolChoice needs tools/],
    ['a thinking budget and a level together', { message: 'hi', thinking: { budget: 100, level: 'low' } }, /budget or level, not both/],
    ['a thinking budget out of range', { message: 'hi', thinking: { budget: 40_000 } }, /thinking\/budget must be <= 32768/]
  ]
  test.each(cases)('%s', async (_name, body, message) => {
    const before = gw.sim.stats().requests
    const r = await postChat(gw.url, body)
    expect(r.status).toBe(400)
    expect(r.body).toEqual({ error: { code: 'bad_request', message: expect.stringMatching(message) } })
    expect(gw.sim.stats().requests).toBe(before)
  })
})

describe('thinking', () => {
  const thoughts = (r: ChatResult) => eventsOf(r, 'thought').map((e: SseEvent) => e.json.text as string)

  test('thought events only when asked, before the answer and never in its text; counted in usage either way', async () => {
    const message = 'why is the sky blue? [[sim:think=2]]'
    const shown = await postChat(gw.url, { message, history: [], thinking: { include: true, budget: 1024 } })
    expect(shown.events.map((e) => e.event)).toEqual(['meta', 'thought', 'thought', ...Array(6).fill('chunk'), 'done'])
    expect(thoughts(shown).join('')).toMatch(/^\*\*Thinking it through\*\*/)
    expect(ids(shown)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    expect(terminal(shown)[0]!.json.usage).toMatchObject({ outputTokens: 6, thoughtTokens: 24 })
    expect((await lastUpstream()).generationConfig.thinkingConfig).toEqual({ thinkingBudget: 1024, includeThoughts: true })

    const hidden = await postChat(gw.url, { message, history: [] })
    expect(thoughts(hidden)).toEqual([])
    expect(replyText(hidden)).toBe(replyText(shown))
    expect(terminal(hidden)[0]!.json.usage.thoughtTokens).toBe(24)
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    expect(Number(/gateway_tokens_total\{direction="thought"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(48)
  })

  test('a session keeps the answer, never the thoughts', async () => {
    const first = await postChat(gw.url, { message: 'think first [[sim:think=1]]', thinking: { include: true } })
    await postChat(gw.url, { sessionId: first.events[0]!.json.sessionId, message: 'and then?' })
    const model = (await lastUpstream()).contents[1]!
    expect(model.parts.map((p: { text: string }) => p.text).join('')).toBe(replyText(first))
    expect(JSON.stringify(model)).not.toContain(thoughts(first)[0]!.slice(0, 20))
  })

  test('TTFT is measured to the first answer chunk, and thoughts keep the first-token deadline met', async () => {
    const patient = await startGateway({ STREAM_TTFT_TIMEOUT_MS: '3000' }, { tokens: 2 })
    try {
      // Thoughts at 100 and 2,100 ms, the answer at 4,100 ms: past the deadline, had thoughts not counted.
      const r = await postChat(patient.url, {
        message: 'slow thinker [[sim:think=2, ttft=100, delay=2000]]',
        history: [],
        thinking: { include: true }
      })
      expect(terminal(r)[0]!.event).toBe('done')
      expect(thoughts(r)).toHaveLength(2)
      expect(terminal(r)[0]!.json.timing.ttftMs).toBeGreaterThanOrEqual(4_000)
    } finally {
      await patient.close()
    }
  })
})

describe('read to the end', () => {
  test('a finishReason on every chunk (Gemini 1.x) ends nothing early', async () => {
    const r = await postChat(gw.url, { message: 'old style [[sim:finish-every-chunk]]', history: [] })
    expect(eventsOf(r, 'chunk')).toHaveLength(6)
    expect(terminal(r)[0]!.json.finishReason).toBe('STOP')
  })
})
