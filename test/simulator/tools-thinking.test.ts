// The simulator's function calls, thoughts and Gemini 3 signature rule, read by the real SDK.
import type { FunctionDeclaration, GenerateContentConfig, Part } from '@google/genai'
import { describe, expect, it } from 'vitest'
import { parseDirectives } from '../../src/simulator/directives.js'
import { apiErrorBody, collect, collectFailure, finishReasons, partsOf, postRaw, start, textOf, userTurn } from './sim-helpers.js'

const GEMINI_3 = 'gemini-3-flash-preview'

const weather: FunctionDeclaration = {
  name: 'get_weather',
  description: 'Current weather in a city',
  parametersJsonSchema: {
    type: 'object',
    properties: {
      city: { type: 'string' },
      unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      days: { type: 'integer', minimum: 1, maximum: 7 }
    },
    required: ['city']
  }
}
const time: FunctionDeclaration = { name: 'get_time', parametersJsonSchema: { type: 'object', properties: { zone: { type: 'string' } } } }
const tools: GenerateContentConfig = { tools: [{ functionDeclarations: [weather, time] }] }

describe('tools=a,b', () => {
  it('parses a comma list of names until the next name=value or semicolon', () => {
    expect(parseDirectives('[[sim:tools=get_weather,get_time]]')).toEqual({ tools: ['get_weather', 'get_time'] })
    expect(parseDirectives('[[sim:tools=a, b, tokens=3, block]]')).toEqual({ tools: ['a', 'b'], tokens: 3, block: true })
    expect(parseDirectives('[[sim:tools=a; b]]')).toEqual({ tools: ['a'] })
    expect(parseDirectives('[[sim:think=4, finish-every-chunk]]')).toEqual({ think: 4, finishEveryChunk: true })
  })

  it('answers one functionCall part per named declared tool, in one chunk, with args that fit the schema', async () => {
    const sim = await start()
    const chunks = await collect(sim, 'weather and time? [[sim:tools=get_weather,get_time,undeclared]]', tools)
    expect(chunks).toHaveLength(1)
    expect(finishReasons(chunks)).toEqual(['STOP'])
    const calls = partsOf(chunks).map((p) => p.functionCall)
    expect(calls.map((c) => c?.name)).toEqual(['get_weather', 'get_time'])
    const args = calls[0]!.args as { city: unknown; unit: unknown; days: number }
    expect(typeof args.city).toBe('string')
    expect(['celsius', 'fahrenheit']).toContain(args.unit)
    expect(Number.isInteger(args.days) && args.days >= 1 && args.days <= 7).toBe(true)
    // A thinking model signs the first call of a parallel set only, as Gemini documents.
    expect(partsOf(chunks).map((p) => typeof p.thoughtSignature)).toEqual(['string', 'undefined'])
    // The same request gets the same calls.
    expect(partsOf(await collect(sim, 'weather and time? [[sim:tools=get_weather,get_time,undeclared]]', tools))).toEqual(partsOf(chunks))
  })

  it('answers text when calling is off, and the first allowed tool when it is forced', async () => {
    const sim = await start({ tokens: 3 })
    const none = await collect(sim, 'hi [[sim:tools=get_weather]]', {
      ...tools,
      toolConfig: { functionCallingConfig: { mode: 'NONE' as never } }
    })
    expect(partsOf(none).some((p) => p.functionCall)).toBe(false)
    const forced = await collect(sim, 'hi', {
      ...tools,
      toolConfig: { functionCallingConfig: { mode: 'ANY' as never, allowedFunctionNames: ['get_time'] } }
    })
    expect(partsOf(forced).map((p) => p.functionCall?.name)).toEqual(['get_time'])
  })

  it('answers a turn that returns function results with text', async () => {
    const sim = await start({ tokens: 4 })
    const first = await collect(sim, 'weather? [[sim:tools=get_weather]]', tools)
    const call = partsOf(first)[0]!
    const contents = [
      userTurn('weather? [[sim:tools=get_weather]]'),
      { role: 'model', parts: [call] },
      { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temperature: 21 } } }] }
    ]
    const reply = await collect(sim, contents, tools)
    expect(partsOf(reply).some((p) => p.functionCall)).toBe(false)
    expect(textOf(reply).split(' ')).toHaveLength(4)
    // The results are part of what the reply depends on.
    const other = [
      ...contents.slice(0, 2),
      { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: { temperature: 5 } } }] }
    ]
    expect(textOf(await collect(sim, other, tools))).not.toBe(textOf(reply))
  })
})

describe('Gemini 3', () => {
  it('ids its calls, signs the first, and ends with an empty text chunk', async () => {
    const sim = await start()
    const chunks = await collect(sim, 'weather? [[sim:tools=get_weather,get_time]]', tools, GEMINI_3)
    expect(chunks).toHaveLength(2)
    expect(finishReasons(chunks)).toEqual([undefined, 'STOP'])
    const [a, b] = partsOf(chunks)
    expect(a!.functionCall!.id).toMatch(/^[a-z0-9]{8}$/)
    expect(b!.functionCall!.id).toMatch(/^[a-z0-9]{8}$/)
    expect(a!.functionCall!.id).not.toBe(b!.functionCall!.id)
    expect(a!.thoughtSignature).toMatch(/^[A-Za-z0-9+/]+=*$/)
    expect(b!.thoughtSignature).toBeUndefined()
    expect(partsOf(chunks)[2]).toEqual({ text: '' })
  })

  it('ends a text reply with an empty part that carries the signature', async () => {
    const sim = await start({ tokens: 3 })
    const chunks = await collect(sim, 'hello', undefined, GEMINI_3)
    expect(chunks).toHaveLength(4)
    expect(finishReasons(chunks)).toEqual([undefined, undefined, undefined, 'STOP'])
    expect(partsOf(chunks).at(-1)).toEqual({ text: '', thoughtSignature: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/) })
  })

  it('refuses a current turn whose first call of a step comes back without its signature, as Gemini does', async () => {
    const sim = await start({ tokens: 2 })
    const first = partsOf(await collect(sim, 'weather? [[sim:tools=get_weather,get_time]]', tools, GEMINI_3)).filter((p) => p.functionCall)
    const results = {
      role: 'user',
      parts: first.map((p) => ({ functionResponse: { name: p.functionCall!.name!, id: p.functionCall!.id!, response: { ok: true } } }))
    }
    const replay = (parts: Part[]) => [userTurn('weather? [[sim:tools=get_weather,get_time]]'), { role: 'model', parts }, results]

    expect(textOf(await collect(sim, replay(first), tools, GEMINI_3))).not.toBe('')
    const stripped = first.map(({ thoughtSignature: _, ...p }) => p)
    const { error } = await collectFailure(sim, replay(stripped), tools, GEMINI_3)
    expect(apiErrorBody(error).error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT' })
    expect(apiErrorBody(error).error.message).toMatch(
      /^Function call is missing a thought_signature in functionCall parts\..*`default_api:get_weather` , position 2\./
    )
    // Only the current turn is checked: once a new user message with text follows, the old turn is history.
    const later = [...replay(stripped), { role: 'model', parts: [{ text: 'done' }] }, userTurn('thanks')]
    expect(textOf(await collect(sim, later, tools, GEMINI_3))).not.toBe('')
    // Gemini 2.5 does not enforce it.
    expect(textOf(await collect(sim, replay(stripped), tools))).not.toBe('')
  })
})

describe('think=N', () => {
  it('sends N thought chunks before the answer when includeThoughts is set, and counts them either way', async () => {
    const sim = await start({ tokens: 3 })
    const shown = await collect(sim, 'why? [[sim:think=2]]', { thinkingConfig: { includeThoughts: true } })
    expect(shown).toHaveLength(5)
    const parts = partsOf(shown)
    expect(parts.map((p) => p.thought === true)).toEqual([true, true, false, false, false])
    expect(parts[0]!.text).toMatch(/^\*\*.+\*\*\n\n/)
    // candidatesTokenCount appears once the answer starts; thoughtsTokenCount grows while thinking, then stays.
    expect(shown.map((c) => c.usageMetadata?.candidatesTokenCount)).toEqual([undefined, undefined, 1, 2, 3])
    expect(shown.map((c) => c.usageMetadata?.thoughtsTokenCount)).toEqual([12, 24, 24, 24, 24])
    const last = shown.at(-1)!.usageMetadata!
    expect(last.totalTokenCount).toBe(last.promptTokenCount! + 3 + 24)

    const hidden = await collect(sim, 'why? [[sim:think=2]]')
    expect(partsOf(hidden).some((p) => p.thought)).toBe(false)
    expect(textOf(hidden)).toBe(
      parts
        .filter((p) => !p.thought)
        .map((p) => p.text)
        .join('')
    )
    expect(hidden.at(-1)!.usageMetadata?.thoughtsTokenCount).toBe(24)

    const off = await collect(sim, 'why? [[sim:think=2]]', { thinkingConfig: { includeThoughts: true, thinkingBudget: 0 } })
    expect(partsOf(off).some((p) => p.thought)).toBe(false)
    expect(off.at(-1)!.usageMetadata?.thoughtsTokenCount).toBeUndefined()
  })

  it("refuses a budget and a level together with Gemini's message", async () => {
    const sim = await start()
    const res = await postRaw(
      sim,
      JSON.stringify({ contents: [userTurn('hi')], generationConfig: { thinkingConfig: { thinkingBudget: 100, thinkingLevel: 'LOW' } } })
    )
    expect(res.status).toBe(400)
    expect(await res.json()).toEqual({
      error: { code: 400, message: 'You can only set only one of thinking budget and thinking level.', status: 'INVALID_ARGUMENT' }
    })
  })
})

describe('finish-every-chunk', () => {
  it('repeats finishReason STOP on every chunk, as Gemini 1.x streamed', async () => {
    const sim = await start({ tokens: 4 })
    expect(finishReasons(await collect(sim, 'old style [[sim:finish-every-chunk]]'))).toEqual(['STOP', 'STOP', 'STOP', 'STOP'])
  })
})

describe('GET /__sim/last', () => {
  it('answers the last generate request as received: method, path and parsed body', async () => {
    const sim = await start({ tokens: 1 })
    expect((await fetch(`${sim.url}/__sim/last`)).status).toBe(404)
    await collect(sim, 'remember me', { ...tools, systemInstruction: 'be brief' })
    const last = (await (await fetch(`${sim.url}/__sim/last`)).json()) as { method: string; path: string; body: any }
    expect(last).toMatchObject({ method: 'POST', path: '/v1beta/models/gemini-2.5-flash:streamGenerateContent' })
    expect(last.body.contents).toEqual([userTurn('remember me')])
    expect(last.body.tools[0].functionDeclarations.map((d: { name: string }) => d.name)).toEqual(['get_weather', 'get_time'])
    expect(sim.last()).toEqual(last)
  })
})
