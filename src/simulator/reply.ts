import { randomBytes } from 'node:crypto'
import type { Directives } from './directives.js'
import type { SimulatorOptions } from './options.js'
import { answersCalls, missingSignature, promptTokenCount, type GenerateRequest, type JsonObject } from './request.js'
import { Random, replyTokens, seedOf } from './text.js'
import { thoughtSignature, valueFor } from './tools.js'
import { ChunkEncoder, errorBody, sseEvent, type FinishReason } from './wire.js'

/** After the events: end the response, destroy the socket, or stay silent until the client leaves. */
export type Ending = 'end' | 'drop' | 'hang'

export type ReplyPlan =
  { kind: 'error'; status: number; body: string } | { kind: 'stream'; events: string[]; ending: Ending; ttftMs: number; delayMs: number }

interface Cut {
  after: number
  kind: 'error' | 'drop' | 'safety'
}

/** Words in one thought summary chunk. */
const THOUGHT_WORDS = 12
/** Output tokens a function call part is counted as. */
const CALL_TOKENS = 8

// Gemini 3 ids its calls, signs the last part of every reply and insists on the signatures coming back.
const isGemini3 = (model: string) => model.startsWith('gemini-3')
// Thinking models sign their function calls (2.5 may, 3 always).
const signsCalls = (model: string) => isGemini3(model) || model.startsWith('gemini-2.5')

// The earliest requested interruption wins; on a tie fail-after beats drop-after beats safety.
function cutOf(d: Directives, failing: boolean, chunks: number): Cut | undefined {
  let cut: Cut | undefined
  const consider = (after: number | undefined, kind: Cut['kind']) => {
    if (after === undefined) return
    const at = Math.min(after, chunks)
    if (!cut || at < cut.after) cut = { after: at, kind }
  }
  if (failing) {
    consider(d.failAfter, 'error')
    consider(d.dropAfter, 'drop')
  }
  if (d.safety) consider(Math.floor(chunks / 2), 'safety')
  return cut
}

/** The functions the model calls: the directive's declared tools, or, when calling is forced, the first allowed one. */
function plannedCalls(request: GenerateRequest, d: Directives, seed: string): JsonObject[] {
  if (answersCalls(request) || request.toolMode === 'NONE') return []
  const allowed =
    request.toolMode === 'ANY' && request.allowedTools ? request.tools.filter((t) => request.allowedTools?.includes(t.name)) : request.tools
  let named = (d.tools ?? []).flatMap((name) => allowed.filter((t) => t.name === name))
  if (named.length === 0 && request.toolMode === 'ANY') named = allowed.slice(0, 1)
  const random = new Random(seedOf(request, seed, 'args'))
  return named.map((tool) => ({ name: tool.name, args: valueFor(tool.schema ?? { type: 'object' }, random) }))
}

/**
 * Everything a request will receive, decided up front so the timer loop only writes strings.
 * `failing` is false once `times=N` is used up: status, fail-after, drop-after and hang are then ignored.
 */
export function planReply(request: GenerateRequest, d: Directives, failing: boolean, options: SimulatorOptions, model: string): ReplyPlan {
  if (failing && d.status !== undefined) {
    return { kind: 'error', status: d.status, body: errorBody(d.status, { model, retryDelayMs: d.retryDelayMs ?? options.retryDelayMs }) }
  }
  const unsigned = isGemini3(model) ? missingSignature(request) : undefined
  if (unsigned) return { kind: 'error', status: 400, body: errorBody(400, { message: unsigned }) }
  const ttftMs = d.ttftMs ?? options.ttftMs
  const delayMs = d.delayMs ?? options.delayMs
  if (failing && d.hang) return { kind: 'stream', events: [], ending: 'hang', ttftMs, delayMs }

  const encoder = new ChunkEncoder(model, randomBytes(12).toString('base64url'), promptTokenCount(request))
  if (d.block) return { kind: 'stream', events: [encoder.blocked()], ending: 'end', ttftMs, delayMs }

  const events = thoughts(request, d, options.seed, encoder)
  const calls = plannedCalls(request, d, options.seed)
  if (calls.length > 0) {
    events.push(...callEvents(calls, model, options.seed, encoder))
    return { kind: 'stream', events, ending: 'end', ttftMs, delayMs }
  }

  let tokens = d.tokens ?? options.tokens
  let finishReason: FinishReason = 'STOP'
  if (request.maxOutputTokens !== undefined && request.maxOutputTokens < tokens) {
    tokens = request.maxOutputTokens
    finishReason = 'MAX_TOKENS'
  }
  const words = replyTokens(request, options.seed, tokens)
  const perChunk = options.tokensPerChunk
  const chunks = Math.max(1, Math.ceil(tokens / perChunk))
  const cut = cutOf(d, failing, chunks)
  const textChunks = cut ? cut.after : chunks
  // Gemini 3 ends a text reply with an empty part that carries the turn's signature.
  const signedEnd = isGemini3(model) && !cut

  let sentTokens = 0
  for (let i = 0; i < textChunks; i++) {
    const end = Math.min(tokens, sentTokens + perChunk)
    const last = !cut && !signedEnd && i === chunks - 1
    events.push(encoder.text(words.slice(sentTokens, end).join(''), end, last || d.finishEveryChunk ? finishReason : undefined))
    sentTokens = end
  }
  if (signedEnd) {
    const signature = thoughtSignature(options.seed, model, { text: words.join('') })
    events.push(encoder.parts(`[{"text":"","thoughtSignature":"${signature}"}]`, sentTokens, finishReason))
  }
  if (cut?.kind === 'error') events.push(sseEvent(errorBody(500)))
  if (cut?.kind === 'safety') events.push(encoder.safety(sentTokens))
  return { kind: 'stream', events, ending: cut?.kind === 'drop' ? 'drop' : 'end', ttftMs, delayMs }
}

/** `think=N`: N thought summaries, sent only when the request asks for them, counted either way. */
function thoughts(request: GenerateRequest, d: Directives, seed: string, encoder: ChunkEncoder): string[] {
  const chunks = request.thinkingBudget === 0 ? 0 : (d.think ?? 0)
  if (!request.includeThoughts) {
    encoder.thoughtTokens += chunks * THOUGHT_WORDS
    return []
  }
  const words = replyTokens(request, seed, chunks * THOUGHT_WORDS, 'thought')
  const events: string[] = []
  for (let i = 0; i < chunks; i++) {
    encoder.thoughtTokens += THOUGHT_WORDS
    const text = words.slice(i * THOUGHT_WORDS, (i + 1) * THOUGHT_WORDS).join('')
    events.push(encoder.thought(i === 0 ? `**Thinking it through**\n\n${text.trimStart()}` : text))
  }
  return events
}

/**
 * The calls in one chunk, parallel when several: only the first carries the signature, as Gemini
 * documents. Gemini 3 also ids each call and ends with an empty text part; 2.5 finishes in the same chunk.
 */
function callEvents(calls: JsonObject[], model: string, seed: string, encoder: ChunkEncoder): string[] {
  const parts = calls.map((call, i) => {
    const id = isGemini3(model)
      ? thoughtSignature(seed, model, { id: call, i })
          .replace(/[^a-z0-9]/g, '')
          .slice(0, 8)
      : undefined
    const functionCall = id ? { ...call, id } : call
    return i === 0 && signsCalls(model) ? { functionCall, thoughtSignature: thoughtSignature(seed, model, functionCall) } : { functionCall }
  })
  const tokens = CALL_TOKENS * calls.length
  if (!isGemini3(model)) return [encoder.parts(JSON.stringify(parts), tokens, 'STOP', 'Model generated function call(s).')]
  return [encoder.parts(JSON.stringify(parts), tokens), encoder.text('', tokens, 'STOP')]
}
