import { randomBytes } from 'node:crypto'
import type { Directives } from './directives.js'
import type { SimulatorOptions } from './options.js'
import { promptTokenCount, type GenerateRequest } from './request.js'
import { replyTokens } from './text.js'
import { ChunkEncoder, errorBody, sseEvent, type FinishReason } from './wire.js'

/** After the events: end the response, destroy the socket, or stay silent until the client leaves. */
export type Ending = 'end' | 'drop' | 'hang'

export type ReplyPlan =
  { kind: 'error'; status: number; body: string } | { kind: 'stream'; events: string[]; ending: Ending; ttftMs: number; delayMs: number }

interface Cut {
  after: number
  kind: 'error' | 'drop' | 'safety'
}

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

/**
 * Everything a request will receive, decided up front so the timer loop only writes strings.
 * `failing` is false once `times=N` is used up: status, fail-after, drop-after and hang are then ignored.
 */
export function planReply(request: GenerateRequest, d: Directives, failing: boolean, options: SimulatorOptions, model: string): ReplyPlan {
  if (failing && d.status !== undefined) {
    return { kind: 'error', status: d.status, body: errorBody(d.status, { model, retryDelayMs: d.retryDelayMs ?? options.retryDelayMs }) }
  }
  const ttftMs = d.ttftMs ?? options.ttftMs
  const delayMs = d.delayMs ?? options.delayMs
  if (failing && d.hang) return { kind: 'stream', events: [], ending: 'hang', ttftMs, delayMs }

  const encoder = new ChunkEncoder(model, randomBytes(12).toString('base64url'), promptTokenCount(request))
  if (d.block) return { kind: 'stream', events: [encoder.blocked()], ending: 'end', ttftMs, delayMs }

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

  const events: string[] = []
  let sentTokens = 0
  for (let i = 0; i < textChunks; i++) {
    const end = Math.min(tokens, sentTokens + perChunk)
    const last = !cut && i === chunks - 1
    events.push(encoder.text(words.slice(sentTokens, end).join(''), end, last ? finishReason : undefined))
    sentTokens = end
  }
  if (cut?.kind === 'error') events.push(sseEvent(errorBody(500)))
  if (cut?.kind === 'safety') events.push(encoder.safety(sentTokens))
  return { kind: 'stream', events, ending: cut?.kind === 'drop' ? 'drop' : 'end', ttftMs, delayMs }
}
