// One chat turn, run as a Piscina task (chat.worker.ts) or, for the benchmark baseline, inline.
// Several turns may share one thread (POOL_TASKS_PER_WORKER).
//
//   front process ── ChatTask{port} ──▶ task()
//                                         │  upstream.stream(request, signal)   (the task's deployment: gemini.ts or openai.ts)
//                                         ▼
//   port ◀── framed chunk · thought · tool_call events (batched per tick) ◀── pieces, read to their end
//   port ◀── start · hb (heartbeat ticker, for the front's watchdog) · retry · answer
//   port ◀── done | error (exactly one, last)
//   port ──▶ cancel → abort the upstream call
import { threadId } from 'node:worker_threads'
import { setTimeout as sleep } from 'node:timers/promises'
import type {
  ChatTask,
  Content,
  DoneMessage,
  ErrorMessage,
  FrontMessage,
  Part,
  ToolCall,
  Usage,
  WireError,
  WorkerMessage,
  WorkerSettings
} from '../src/protocol.js'
import type { EventFramer } from '../src/wire/framing.js'
import { gatewayFramer } from '../src/wire/gateway-events.js'
import { openAiFramer } from '../src/wire/openai-events.js'
import { wireError } from '../src/wire/error-event.js'
import { newGatewayCallId } from '../src/wire/tool-call-id.js'
import { SAFETY_FINISH, type UpstreamFailure } from './upstream.js'
import { createUpstreams } from './upstreams.js'
import { injectChaos } from './chaos.js'

/** Why an attempt was aborted: the client left, or a deadline passed (then this is the error to send). */
type AbortReason = 'cancel' | WireError

class Stream {
  pending = ''
  /** Set when anything was posted since the last heartbeat tick. */
  posted = false
  /** Events relayed so far (chunk, thought, tool_call): each one's `id:`. */
  events = 0
  calls = 0
  /** Thoughts come first: the front times the first answer chunk by an `answer` message. */
  private answer: 'unneeded' | 'waiting' | 'pending' | 'sent'

  constructor(
    readonly port: ChatTask['port'],
    private readonly framer: EventFramer,
    thoughtsRelayed: boolean
  ) {
    this.answer = thoughtsRelayed ? 'waiting' : 'unneeded'
  }

  post(message: WorkerMessage): void {
    this.flush()
    this.posted = true
    this.port.postMessage(message)
  }

  chunk(text: string): void {
    this.add(this.framer.chunk(++this.events, text))
    this.answered()
  }

  thought(text: string): void {
    this.add(this.framer.thought(++this.events, text))
  }

  toolCall(call: ToolCall): void {
    this.add(this.framer.toolCall(++this.events, call, this.calls++))
    this.answered()
  }

  /** Events produced within one tick leave as one message. */
  private add(frame: string): void {
    if (this.pending === '') setImmediate(this.flush)
    this.pending += frame
  }

  private answered(): void {
    if (this.answer === 'waiting') this.answer = 'pending'
  }

  flush = (): void => {
    if (this.pending === '') return
    this.posted = true
    this.port.postMessage(this.pending)
    this.pending = ''
    if (this.answer === 'pending') {
      this.answer = 'sent'
      this.port.postMessage({ type: 'answer' } satisfies WorkerMessage)
    }
  }
}

/** The model's turn as a session keeps it: parts in order, runs of plain text in one part. */
function keep(parts: Part[], part: Part): void {
  const plain = typeof part.text === 'string' && Object.keys(part).length === 1
  if (plain && part.text === '') return
  const last = parts.at(-1)
  // A part with a signature starts a run; plain text that follows joins it, as one unary reply would hold it.
  if (plain && last && typeof last.text === 'string' && last.thought !== true) last.text += part.text ?? ''
  else parts.push({ ...part })
}

export function createChatTask(settings: WorkerSettings): (task: ChatTask) => Promise<void> {
  const upstreams = createUpstreams(settings)
  // The front process's watchdog sees this thread through these: a stream that posted nothing
  // in a tick gets a heartbeat, so silence means this thread's event loop is stuck.
  const live = new Set<Stream>()
  setInterval(() => {
    for (const stream of live) {
      if (!stream.posted) stream.port.postMessage({ type: 'hb' } satisfies WorkerMessage)
      stream.posted = false
    }
  }, settings.heartbeatMs).unref()

  return async function chatTask(task: ChatTask): Promise<void> {
    const framer = task.openai ? openAiFramer(task.openai) : gatewayFramer
    const stream = new Stream(task.port, framer, task.request.thinking?.include === true)
    const controller = new AbortController()
    // Cancel is the one message the front sends (FrontMessage).
    task.port.on('message', (_message: FrontMessage) => {
      controller.abort('cancel' satisfies AbortReason)
    })
    live.add(stream)
    stream.post({ type: 'start', threadId })
    try {
      if (settings.chaos) await injectChaos(lastText(task.request.contents), task.attempt)
      const last = await relay(task, stream, controller)
      if (last) stream.post(last)
    } finally {
      live.delete(stream)
      task.port.close()
    }
  }

  async function relay(task: ChatTask, stream: Stream, controller: AbortController): Promise<DoneMessage | ErrorMessage | undefined> {
    const { signal } = controller
    const deadline = (code: 'upstream_timeout' | 'stream_timeout', message: string) => () =>
      controller.abort(wireError(code, message) satisfies AbortReason)
    // One deadline for the turn: a retry (here, or in the quarantine pool after a worker fault) inherits what is left of it.
    const { firstTokenBy } = task
    const ttft = setTimeout(
      deadline('upstream_timeout', 'No first token from the model provider in time.'),
      Math.max(0, firstTokenBy - Date.now())
    )
    const total = setTimeout(deadline('stream_timeout', 'The stream exceeded its total time limit.'), settings.maxStreamMs)
    const upstream = upstreams(task.deployment)
    const showThoughts = task.request.thinking?.include === true
    const keepThoughts = showThoughts && task.wantContent
    const oneCall = task.request.parallelToolCalls === false
    let idle: NodeJS.Timeout | undefined
    let usage: Usage | undefined
    try {
      for (let attempt = 0; ; attempt++) {
        let failure: UpstreamFailure
        const parts: Part[] = []
        let thoughts = ''
        let finishReason: string | undefined
        // A refusal anywhere ends the turn as one; nothing after it reaches the client.
        let refused: string | undefined
        try {
          // Read to the end: Gemini 1.x repeats finishReason on every chunk, and code execution and
          // server-side tools send STOP mid-stream and go on. The last finishReason is the turn's.
          for await (const piece of upstream.stream(task.request, signal)) {
            // Any chunk is life, thoughts included: the first-token deadline is met, the idle one reset.
            if (idle) idle.refresh()
            else {
              clearTimeout(ttft)
              idle = setTimeout(deadline('stream_timeout', 'The model provider stopped sending.'), settings.idleTimeoutMs)
            }
            if (piece.usage) usage = piece.usage
            if (refused === undefined) {
              if (piece.thought && showThoughts) stream.thought(piece.thought)
              if (piece.thought && keepThoughts) thoughts += piece.thought
              for (const part of piece.parts) relayPart(part, stream, parts, oneCall)
            }
            if (piece.finishReason) finishReason = piece.finishReason
            refused ??= piece.blockReason ?? (finishReason && SAFETY_FINISH.has(finishReason) ? finishReason : undefined)
          }
          if (refused !== undefined) {
            return errorMessage(wireError('safety_blocked', `The model declined to answer (${refused}).`), usage)
          }
          const message = done(finishReason ?? 'FINISH_REASON_UNSPECIFIED', usage, stream.calls)
          if (task.wantContent) message.content = { role: 'model', parts }
          if (keepThoughts) message.thoughts = thoughts
          return message
        } catch (err) {
          if (signal.aborted) return aborted(signal, usage)
          failure = upstream.classify(err)
        }
        // Retried only while the client has seen nothing of this attempt.
        // Nothing reached the client and another deployment could serve it: the front routes the turn on.
        if (stream.events === 0 && task.alternatives && (failure.transient || failure.error.code === 'upstream_rate_limited')) {
          return { ...errorMessage(failure.error, usage), reroute: true, ...(failure.unreachable ? { unreachable: true } : {}) }
        }
        const wait = stream.events === 0 && attempt < settings.upstreamRetries ? retryDelay(failure, attempt) : undefined
        if (wait === undefined || Date.now() + wait >= firstTokenBy) return errorMessage(failure.error, usage)
        stream.post({
          type: 'retry',
          code: failure.error.code,
          attempt: attempt + 1,
          ...(failure.error.retryAfterMs ? { retryAfterMs: failure.error.retryAfterMs } : {})
        })
        if (!(await sleep(wait, true, { signal }).catch(() => false))) return aborted(signal, usage)
      }
    } finally {
      clearTimeout(ttft)
      clearTimeout(total)
      clearTimeout(idle)
    }
  }
}

/** Text reaches the client as chunk events, a call as one tool_call event; every part is kept for the turn. */
function relayPart(part: Part, stream: Stream, parts: Part[], oneCall: boolean): void {
  const fc = part.functionCall
  if (fc) {
    if (oneCall && stream.calls > 0) return
    const id = fc.id ?? newGatewayCallId()
    const call: ToolCall = { id, name: fc.name, args: fc.args ?? {} }
    if (part.thoughtSignature) call.signature = part.thoughtSignature
    stream.toolCall(call)
    keep(parts, fc.id ? part : { ...part, functionCall: { ...fc, id } })
    return
  }
  if (typeof part.text === 'string' && part.text !== '') stream.chunk(part.text)
  keep(parts, part)
}

const lastText = (contents: Content[]) => (contents.at(-1)?.parts ?? []).map((p) => p.text ?? '').join('')

/** The first retry's delay before jitter; each next one doubles it. */
const RETRY_BASE_MS = 100

/** Exponential backoff with jitter for transient faults; a 429 only when its RetryInfo says how long. */
function retryDelay(failure: UpstreamFailure, attempt: number): number | undefined {
  if (failure.transient) return Math.round(RETRY_BASE_MS * 2 ** attempt * (0.5 + Math.random() / 2))
  return failure.error.code === 'upstream_rate_limited' ? failure.error.retryAfterMs : undefined
}

function done(finishReason: string, usage: Usage | undefined, toolCalls: number): DoneMessage {
  return { type: 'done', finishReason, usage: usage ?? { promptTokens: 0, outputTokens: 0, totalTokens: 0 }, toolCalls }
}

/** A cancelled stream has no one left to tell; a deadline's reason is the error to send. */
function aborted(signal: AbortSignal, usage: Usage | undefined): ErrorMessage | undefined {
  const reason = signal.reason as AbortReason
  return reason === 'cancel' ? undefined : errorMessage(reason, usage)
}

function errorMessage(error: WireError, usage: Usage | undefined): ErrorMessage {
  return usage ? { type: 'error', error, usage } : { type: 'error', error }
}
