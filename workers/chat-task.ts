// One chat turn, run as a Piscina task (chat.worker.ts) or, for the benchmark baseline, inline.
// Several turns may share one thread (POOL_TASKS_PER_WORKER).
//
//   front process ── ChatTask{port} ──▶ task()
//                                         │  upstream(request, signal)   (gemini.ts, one client per worker)
//                                         ▼
//   port ◀── framed chunk events (batched per tick) ◀── pieces
//   port ◀── start · hb (heartbeat ticker, for the front's watchdog) · retry
//   port ◀── done | error (exactly one, last)
//   port ──▶ cancel → abort the upstream call
import { threadId } from 'node:worker_threads'
import { setTimeout as sleep } from 'node:timers/promises'
import type {
  ChatTask,
  DoneMessage,
  ErrorMessage,
  FrontMessage,
  OpenAiFraming,
  Usage,
  WireError,
  WorkerMessage,
  WorkerSettings
} from '../src/protocol.js'
import { classifyUpstreamError, createUpstream, SAFETY_FINISH, type UpstreamFailure } from './gemini.js'
import { injectChaos } from './chaos.js'

/** Why an attempt was aborted: the client left, or a deadline passed (then this is the error to send). */
type AbortReason = 'cancel' | WireError

class Stream {
  pending = ''
  /** Set when anything was posted since the last heartbeat tick. */
  posted = false
  chunks = 0
  text = ''
  /** What surrounds the JSON-encoded text in every chunk event, built once per stream. */
  private readonly before: string
  private readonly after: string

  constructor(
    readonly port: ChatTask['port'],
    openai: OpenAiFraming | undefined
  ) {
    if (openai) {
      const head = JSON.stringify({ id: openai.id, object: 'chat.completion.chunk', created: openai.created, model: openai.model })
      this.before = `\ndata: ${head.slice(0, -1)},"choices":[{"index":0,"delta":{"role":"assistant","content":`
      this.after = '},"finish_reason":null}]}\n\n'
    } else {
      this.before = '\nevent: chunk\ndata: {"text":'
      this.after = '}\n\n'
    }
  }

  post(message: WorkerMessage): void {
    this.flush()
    this.posted = true
    this.port.postMessage(message)
  }

  /** Frames one chunk event; events produced within one tick leave as one message. */
  chunk(text: string): void {
    if (this.pending === '') setImmediate(this.flush)
    this.pending += `id: ${++this.chunks}${this.before}${JSON.stringify(text)}${this.after}`
  }

  flush = (): void => {
    if (this.pending === '') return
    this.posted = true
    this.port.postMessage(this.pending)
    this.pending = ''
  }
}

export function createChatTask(settings: WorkerSettings): (task: ChatTask) => Promise<void> {
  const upstream = createUpstream(settings)
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
    const stream = new Stream(task.port, task.openai)
    const controller = new AbortController()
    // Cancel is the one message the front sends (FrontMessage).
    task.port.on('message', (_message: FrontMessage) => {
      controller.abort('cancel' satisfies AbortReason)
    })
    live.add(stream)
    stream.post({ type: 'start', threadId })
    try {
      if (settings.chaos) injectChaos(task.request.turns.at(-1)?.text ?? '')
      const last = await relay(task, stream, controller)
      if (last) stream.post(last)
    } finally {
      live.delete(stream)
      task.port.close()
    }
  }

  async function relay(task: ChatTask, stream: Stream, controller: AbortController): Promise<DoneMessage | ErrorMessage | undefined> {
    const { signal } = controller
    const deadline = (code: string, message: string) => () => controller.abort({ code, message, retryable: true } satisfies AbortReason)
    const firstTokenBy = Date.now() + settings.ttftTimeoutMs
    const ttft = setTimeout(deadline('upstream_timeout', 'No first token from the model provider in time.'), settings.ttftTimeoutMs)
    const total = setTimeout(deadline('stream_timeout', 'The stream exceeded its total time limit.'), settings.maxStreamMs)
    let idle: NodeJS.Timeout | undefined
    let usage: Usage | undefined
    try {
      for (let attempt = 0; ; attempt++) {
        let failure: UpstreamFailure
        try {
          for await (const piece of upstream(task.request, signal)) {
            if (idle) idle.refresh()
            else {
              clearTimeout(ttft)
              idle = setTimeout(deadline('stream_timeout', 'The model provider stopped sending.'), settings.idleTimeoutMs)
            }
            if (piece.usage) usage = piece.usage
            if (piece.text) {
              stream.chunk(piece.text)
              if (task.wantText) stream.text += piece.text
            }
            if (piece.blockReason || (piece.finishReason && SAFETY_FINISH.has(piece.finishReason))) {
              return errorMessage(
                {
                  code: 'safety_blocked',
                  message: `The model declined to answer (${piece.blockReason ?? piece.finishReason}).`,
                  retryable: false
                },
                usage
              )
            }
            if (piece.finishReason) return done(piece.finishReason, usage, stream, task.wantText)
          }
          return done('FINISH_REASON_UNSPECIFIED', usage, stream, task.wantText)
        } catch (err) {
          if (signal.aborted) return aborted(signal, usage)
          failure = classifyUpstreamError(err)
        }
        const wait = stream.chunks === 0 && attempt < settings.upstreamRetries ? retryDelay(failure, attempt) : undefined
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

/** Exponential backoff with jitter for transient faults; a 429 only when its RetryInfo says how long. */
function retryDelay(failure: UpstreamFailure, attempt: number): number | undefined {
  if (failure.transient) return Math.round(100 * 2 ** attempt * (0.5 + Math.random() / 2))
  return failure.error.code === 'upstream_rate_limited' ? failure.error.retryAfterMs : undefined
}

function done(finishReason: string, usage: Usage | undefined, stream: Stream, wantText: boolean): DoneMessage {
  const message: DoneMessage = { type: 'done', finishReason, usage: usage ?? { promptTokens: 0, outputTokens: 0, totalTokens: 0 } }
  if (wantText) message.text = stream.text
  return message
}

/** A cancelled stream has no one left to tell; a deadline's reason is the error to send. */
function aborted(signal: AbortSignal, usage: Usage | undefined): ErrorMessage | undefined {
  const reason = signal.reason as AbortReason
  return reason === 'cancel' ? undefined : errorMessage(reason, usage)
}

function errorMessage(error: WireError, usage: Usage | undefined): ErrorMessage {
  return usage ? { type: 'error', error, usage } : { type: 'error', error }
}
