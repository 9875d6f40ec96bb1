// Tool calling and reasoning on /v1/chat/completions, driven by the official openai client, the way
// LangChain and other OpenAI-shaped clients use it: they send back only id, type, name and arguments.
import OpenAI from 'openai'
import type { ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startGateway, type TestGateway } from './helpers/gateway.js'

const GEMINI_3 = 'gemini-3-flash-preview'
let gw: TestGateway
let client: OpenAI
beforeAll(async () => {
  gw = await startGateway({ UPSTREAM_RETRIES: '0', ALLOWED_MODELS: `gemini-2.5-flash,${GEMINI_3}` }, { tokens: 5 })
  client = new OpenAI({ apiKey: 'unused', baseURL: `${gw.url}/v1`, maxRetries: 0 })
})
afterAll(async () => {
  await gw.close()
})

const tools: ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] }
    }
  },
  { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } } }
]
const ASK = 'weather and time? [[sim:tools=get_weather,get_time]]'
const lastUpstream = async () => ((await (await fetch(`${gw.sim.url}/__sim/last`)).json()) as { body: any }).body

interface Call {
  id: string
  name: string
  arguments: string
}

/** A stream's calls, put together by index as OpenAI clients do, with its text, reasoning and finish. */
async function streamed(params: Record<string, unknown>) {
  const stream = (await client.chat.completions.create({
    ...params,
    stream: true,
    stream_options: { include_usage: true }
  } as never)) as unknown as AsyncIterable<ChatCompletionChunk>
  const calls: Call[] = []
  let text = ''
  let reasoning = ''
  let finish: string | null = null
  let usage: any
  for await (const chunk of stream) {
    usage = chunk.usage ?? usage
    const choice = chunk.choices[0]
    if (!choice) continue
    finish = choice.finish_reason ?? finish
    text += choice.delta.content ?? ''
    reasoning += (choice.delta as { reasoning_content?: string }).reasoning_content ?? ''
    for (const d of choice.delta.tool_calls ?? []) {
      const call = (calls[d.index] ??= { id: '', name: '', arguments: '' })
      call.id += d.id ?? ''
      call.name += d.function?.name ?? ''
      call.arguments += d.function?.arguments ?? ''
    }
  }
  return { calls, text, reasoning, finish, usage }
}

/** What LangChain sends back: each call reduced to id, type, name and arguments, then one tool message per call. */
function answer(calls: Call[]): ChatCompletionMessageParam[] {
  return [
    { role: 'user', content: ASK },
    {
      role: 'assistant',
      content: null,
      tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }))
    },
    ...calls.map((c) => ({ role: 'tool' as const, tool_call_id: c.id, content: c.name === 'get_time' ? '09:30' : '{"celsius":21}' }))
  ]
}

describe('a two-call Gemini 3 tool loop through the openai client', () => {
  test('streamed: one index per parallel call, finish_reason tool_calls, and the signature comes back inside the id', async () => {
    const first = await streamed({ model: GEMINI_3, messages: [{ role: 'user', content: ASK }], tools })
    expect(first.finish).toBe('tool_calls')
    expect(first.calls.map((c) => c.name)).toEqual(['get_weather', 'get_time'])
    expect(new Set(first.calls.map((c) => c.id)).size).toBe(2)
    expect(typeof JSON.parse(first.calls[0]!.arguments).city).toBe('string')

    const second = await streamed({ model: GEMINI_3, messages: answer(first.calls), tools })
    expect(second.finish).toBe('stop')
    expect(second.text.length).toBeGreaterThan(0)
    const sent = await lastUpstream()
    expect(sent.contents.map((c: { role: string }) => c.role)).toEqual(['user', 'model', 'user'])
    const [weather, time] = sent.contents[1].parts
    expect(weather.thoughtSignature).toMatch(/^[A-Za-z0-9+/]+=*$/)
    expect(time.thoughtSignature).toBeUndefined()
    expect(weather.functionCall).toEqual({
      name: 'get_weather',
      args: JSON.parse(first.calls[0]!.arguments),
      id: expect.stringMatching(/^[a-z0-9]{8}$/)
    })
    expect(sent.contents[2].parts).toEqual([
      { functionResponse: { name: 'get_weather', id: weather.functionCall.id, response: { celsius: 21 } } },
      { functionResponse: { name: 'get_time', id: time.functionCall.id, response: { result: '09:30' } } }
    ])
  })

  test('not streamed: message.tool_calls, then the same loop', async () => {
    const first = await client.chat.completions.create({ model: GEMINI_3, messages: [{ role: 'user', content: ASK }], tools })
    const choice = first.choices[0]!
    expect(choice.finish_reason).toBe('tool_calls')
    expect(choice.message.content).toBeNull()
    const calls = (choice.message.tool_calls ?? []).map((c) => {
      if (c.type !== 'function') throw new Error('expected a function call')
      return { id: c.id, name: c.function.name, arguments: c.function.arguments }
    })
    expect(calls.map((c) => c.name)).toEqual(['get_weather', 'get_time'])
    const second = await client.chat.completions.create({ model: GEMINI_3, messages: answer(calls), tools })
    expect(second.choices[0]!.finish_reason).toBe('stop')
    expect((await lastUpstream()).contents[1].parts[0].thoughtSignature).toBeTruthy()
  })

  test('tool_choice and parallel_tool_calls: false', async () => {
    const forced = await streamed({
      model: GEMINI_3,
      messages: [{ role: 'user', content: 'hi' }],
      tools,
      tool_choice: { type: 'function', function: { name: 'get_time' } }
    })
    expect((await lastUpstream()).toolConfig).toEqual({ functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['get_time'] } })
    expect(forced.calls.map((c) => c.name)).toEqual(['get_time'])
    const single = await streamed({ model: GEMINI_3, messages: [{ role: 'user', content: ASK }], tools, parallel_tool_calls: false })
    expect(single.calls.map((c) => c.name)).toEqual(['get_weather'])
    expect(single.finish).toBe('tool_calls')
  })

  test.each([
    [
      'a tool message for no call',
      [
        { role: 'user', content: 'a' },
        { role: 'tool', tool_call_id: 'nope', content: 'x' }
      ],
      /tool_call_id 'nope' is not a call/
    ],
    [
      'arguments that are not JSON',
      [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_time', arguments: '{' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'x' }
      ],
      /arguments is not JSON/
    ],
    [
      'a call left unanswered',
      [
        { role: 'user', content: 'a' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'c1', type: 'function', function: { name: 'get_time', arguments: '{}' } },
            { id: 'c2', type: 'function', function: { name: 'get_time', arguments: '{}' } }
          ]
        },
        { role: 'tool', tool_call_id: 'c1', content: 'x' }
      ],
      /must answer every call/
    ]
  ])("%s is a 400 in OpenAI's shape", async (_name, messages, message) => {
    const err = (await client.chat.completions
      .create({ model: GEMINI_3, messages: messages as ChatCompletionMessageParam[], tools })
      .catch((e: unknown) => e)) as InstanceType<typeof OpenAI.APIError>
    expect(err.status).toBe(400)
    expect(err.error).toMatchObject({ type: 'invalid_request_error', code: 'bad_request', message: expect.stringMatching(message) })
  })
})

describe('reasoning', () => {
  test('include_reasoning sends thoughts as delta.reasoning_content, apart from the answer, and counts them', async () => {
    const message = 'why? [[sim:think=2]]'
    const shown = await streamed({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: message }], include_reasoning: true })
    expect(shown.reasoning).toMatch(/^\*\*Thinking it through\*\*/)
    const plain = await streamed({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: message }] })
    expect(plain.reasoning).toBe('')
    expect(shown.text).toBe(plain.text)
    expect(shown.text).not.toContain('Thinking it through')
    expect(shown.usage).toMatchObject({ completion_tokens: 5 + 24, completion_tokens_details: { reasoning_tokens: 24 } })
    expect(plain.usage.completion_tokens_details.reasoning_tokens).toBe(24)

    const whole = (await client.chat.completions.create({
      model: 'gemini-2.5-flash',
      messages: [{ role: 'user', content: message }],
      include_reasoning: true
    } as never)) as any
    expect(whole.choices[0].message.reasoning_content).toBe(shown.reasoning)
    expect(whole.choices[0].message.content).toBe(shown.text)
  })

  test("reasoning_effort sets Gemini 3's level or 2.5's budget; Google's extra_body thinking_config is read too", async () => {
    await streamed({ model: GEMINI_3, messages: [{ role: 'user', content: 'hi' }], reasoning_effort: 'low' })
    expect((await lastUpstream()).generationConfig.thinkingConfig).toEqual({ thinkingLevel: 'LOW' })
    await streamed({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }], reasoning_effort: 'medium' })
    expect((await lastUpstream()).generationConfig.thinkingConfig).toEqual({ thinkingBudget: 8192 })
    const google = await streamed({
      model: 'gemini-2.5-flash',
      messages: [{ role: 'user', content: 'hi [[sim:think=1]]' }],
      extra_body: { google: { thinking_config: { include_thoughts: true, thinking_budget: 512 } } }
    })
    expect((await lastUpstream()).generationConfig.thinkingConfig).toEqual({ thinkingBudget: 512, includeThoughts: true })
    expect(google.reasoning.length).toBeGreaterThan(0)
  })
})
