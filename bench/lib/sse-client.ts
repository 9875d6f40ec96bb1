// One streaming request at a time, over an undici Agent sized for the whole load, recording what a
// client sees: status, time to first chunk, time to the end, chunk count and how the stream ended.
//
// Two wire protocols:
//   gateway  POST /api/chat: meta, chunk*, then exactly one `done` or `error` event
//   gemini   POST …:streamGenerateContent?alt=sse straight to the simulator (the `direct` ceiling):
//            `data:` events only; the stream is done when the body ends after a finishReason
import { createParser } from 'eventsource-parser'
import { Agent, request } from 'undici'

export type Protocol = 'gateway' | 'gemini'

/**
 * done / error: the stream's terminal event. refused: a non-200 answer. lost: the body ended with
 * no terminal event. timeout: the client's per-stream deadline passed. cut: still open when the
 * benchmark ended its run (not a failure). failed: a connection error.
 */
export type Terminal = 'done' | 'error' | 'refused' | 'lost' | 'timeout' | 'cut' | 'failed'

export interface StreamSpec {
  body: string
  /** Carried into the record: a prompt id, a fault kind… */
  tag?: string
}

export interface StreamRecord {
  tag: string | undefined
  /** performance.now() when the request was sent. */
  startAt: number
  status: number
  /** From sending the request to the first chunk; null without one. */
  ttftMs: number | null
  /** From sending the request to the end of the response (or the failure). */
  durationMs: number
  chunks: number
  /** Chunks that arrived inside the client's measurement window. */
  windowChunks: number
  terminal: Terminal
  /** The error event's or refusal's code, or the connection error's code. */
  code?: string
  text?: string
}

export const GEMINI_PATH = '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse'

/** The request body of one turn: the gateway's stateless chat, or Gemini's generateContent. */
export function chatBody(protocol: Protocol, message: string): string {
  return protocol === 'gateway'
    ? JSON.stringify({ message, history: [] })
    : JSON.stringify({ contents: [{ role: 'user', parts: [{ text: message }] }] })
}

export interface ClientOptions {
  /** Per-stream client deadline. */
  timeoutMs: number
  /** Keep each stream's reply text (isolation compares it byte for byte). */
  keepText?: boolean
}

export class SseClient {
  readonly agent: Agent
  /** Chunks arriving within [windowStart, windowEnd] (performance.now()) count as windowChunks. */
  windowStart = 0
  windowEnd = Number.POSITIVE_INFINITY
  private readonly inFlight = new Set<() => void>()
  private readonly url: string
  private readonly headers: Record<string, string>

  constructor(
    readonly origin: string,
    readonly protocol: Protocol,
    connections: number,
    private readonly options: ClientOptions
  ) {
    // One connection per concurrent stream (SSE responses are long; no pipelining).
    this.agent = new Agent({ connections, pipelining: 1, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs })
    this.url = origin + (protocol === 'gateway' ? '/api/chat' : GEMINI_PATH)
    this.headers = { 'content-type': 'application/json', ...(protocol === 'gemini' ? { 'x-goog-api-key': 'bench' } : {}) }
  }

  get open(): number {
    return this.inFlight.size
  }

  /** Ends every stream still open (they are recorded as `cut`). */
  cutAll(): void {
    for (const cut of [...this.inFlight]) cut()
  }

  async close(): Promise<void> {
    this.cutAll()
    await this.agent.destroy()
  }

  async stream(spec: StreamSpec): Promise<StreamRecord> {
    const startAt = performance.now()
    const rec: StreamRecord = {
      tag: spec.tag,
      startAt,
      status: 0,
      ttftMs: null,
      durationMs: 0,
      chunks: 0,
      windowChunks: 0,
      terminal: 'lost'
    }
    if (this.options.keepText) rec.text = ''
    // Written by the parser's callbacks: an object, so that the reads after the loop are not narrowed away.
    const seen = { ended: false, finished: false /* gemini: a finishReason arrived */ }
    let why: 'timeout' | 'cut' | undefined
    const controller = new AbortController()
    const cut = () => {
      why ??= 'cut'
      controller.abort()
    }
    const timer = setTimeout(() => {
      why ??= 'timeout'
      controller.abort()
    }, this.options.timeoutMs)
    this.inFlight.add(cut)

    const chunk = () => {
      const now = performance.now()
      rec.chunks++
      rec.ttftMs ??= now - startAt
      if (now >= this.windowStart && now <= this.windowEnd) rec.windowChunks++
    }
    const onEvent =
      this.protocol === 'gateway'
        ? (event: string | undefined, data: string) => {
            if (seen.ended) return
            if (event === 'chunk') {
              chunk()
              if (rec.text !== undefined) rec.text += (JSON.parse(data) as { text: string }).text
            } else if (event === 'done' || event === 'error') {
              seen.ended = true
              rec.terminal = event
              if (event === 'error') rec.code = (JSON.parse(data) as { code?: string }).code ?? 'unknown'
            }
          }
        : (_event: string | undefined, data: string) => {
            if (seen.ended) return
            if (data.startsWith('{"error"')) {
              seen.ended = true
              rec.terminal = 'error'
              rec.code = 'upstream_error'
              return
            }
            chunk()
            if (data.includes('"finishReason"')) seen.finished = true
          }
    const parser = createParser({ onEvent: (message) => onEvent(message.event, message.data) })

    try {
      const res = await request(this.url, {
        method: 'POST',
        dispatcher: this.agent,
        headers: this.headers,
        body: spec.body,
        signal: controller.signal
      })
      rec.status = res.statusCode
      if (res.statusCode !== 200) {
        const text = await res.body.text()
        rec.terminal = 'refused'
        rec.code = refusalCode(text) ?? `http_${res.statusCode}`
        return rec
      }
      const decoder = new TextDecoder()
      for await (const piece of res.body) parser.feed(decoder.decode(piece as Uint8Array, { stream: true }))
      if (!seen.ended) rec.terminal = this.protocol === 'gemini' && seen.finished ? 'done' : 'lost'
    } catch (err) {
      if (!seen.ended) {
        if (why) rec.terminal = why
        else {
          rec.terminal = 'failed'
          const e = err as { code?: string; cause?: { code?: string }; message?: string }
          rec.code = e.cause?.code ?? e.code ?? e.message ?? 'unknown'
        }
      }
    } finally {
      clearTimeout(timer)
      this.inFlight.delete(cut)
      rec.durationMs = performance.now() - startAt
    }
    return rec
  }
}

function refusalCode(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { error?: { code?: string | number } }).error?.code?.toString()
  } catch {
    return undefined
  }
}
