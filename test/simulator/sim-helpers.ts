// The simulator as the real SDK sees it: simulators started by a test are closed after it, and the
// SDK (@google/genai) is pointed at them.
import { ApiError, GoogleGenAI, type ContentListUnion, type GenerateContentConfig, type GenerateContentResponse } from '@google/genai'
import { afterEach, expect } from 'vitest'
import { startSimulator, type Simulator, type SimulatorStats, type StartSimulatorOptions } from '../../src/simulator/index.js'
import { until } from '../helpers/gateway.js'

export const MODEL = 'gemini-2.5-flash'
const running: Simulator[] = []

afterEach(async () => {
  await Promise.all(running.splice(0).map((sim) => sim.close()))
})

/** A simulator with no delays unless the test asks for them. */
export async function start(options: StartSimulatorOptions = {}): Promise<Simulator> {
  const sim = await startSimulator({ ttftMs: 0, delayMs: 0, ...options })
  running.push(sim)
  return sim
}

export const client = (sim: Simulator) => new GoogleGenAI({ apiKey: 'test', httpOptions: { baseUrl: sim.url, apiVersion: 'v1beta' } })

export async function stream(sim: Simulator, contents: ContentListUnion, config?: GenerateContentConfig, model = MODEL) {
  return client(sim).models.generateContentStream({ model, contents, ...(config && { config }) })
}

export async function collect(sim: Simulator, contents: ContentListUnion, config?: GenerateContentConfig, model = MODEL) {
  const chunks: GenerateContentResponse[] = []
  for await (const chunk of await stream(sim, contents, config, model)) chunks.push(chunk)
  return chunks
}

/** The chunks received before the stream failed, and the failure. */
export async function collectFailure(sim: Simulator, contents: ContentListUnion, config?: GenerateContentConfig, model = MODEL) {
  const chunks: GenerateContentResponse[] = []
  try {
    for await (const chunk of await stream(sim, contents, config, model)) chunks.push(chunk)
  } catch (error) {
    return { chunks, error }
  }
  throw new Error(`expected the stream to fail, got ${chunks.length} chunks`)
}

export const textOf = (chunks: GenerateContentResponse[]) => chunks.map((c) => c.text ?? '').join('')
export const finishReasons = (chunks: GenerateContentResponse[]) => chunks.map((c) => c.candidates?.[0]?.finishReason)
export const partsOf = (chunks: GenerateContentResponse[]) => chunks.flatMap((c) => c.candidates?.[0]?.content?.parts ?? [])

export async function fetchStats(sim: Simulator): Promise<SimulatorStats> {
  const res = await fetch(`${sim.url}/__sim/stats`)
  return (await res.json()) as SimulatorStats
}

/** Polls /__sim/stats until `predicate` holds. */
export async function waitForStats(sim: Simulator, predicate: (stats: SimulatorStats) => boolean): Promise<SimulatorStats> {
  let stats = await fetchStats(sim)
  await until(async () => predicate((stats = await fetchStats(sim))), `simulator stats to match (last: ${JSON.stringify(stats)})`)
  return stats
}

export function postRaw(sim: Simulator, body: string, path = `/v1beta/models/${MODEL}:streamGenerateContent?alt=sse`) {
  return fetch(`${sim.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
}

export const userTurn = (text: string) => ({ role: 'user', parts: [{ text }] })
export const modelTurn = (text: string) => ({ role: 'model', parts: [{ text }] })

export function apiErrorBody(error: unknown) {
  expect(error).toBeInstanceOf(ApiError)
  return JSON.parse((error as ApiError).message) as {
    error: { code: number; status: string; message: string; details?: Array<Record<string, unknown>> }
  }
}
