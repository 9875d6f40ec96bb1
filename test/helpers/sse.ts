// Reads an SSE response with a real parser (eventsource-parser), never by slicing strings.
import { createParser, type EventSourceMessage } from 'eventsource-parser'

export interface SseEvent {
  event: string
  id: string | undefined
  data: string
  json: any
}

export interface ChatResult {
  status: number
  headers: Headers
  /** Parsed events in order; for a non-SSE answer, empty. */
  events: SseEvent[]
  comments: string[]
  /** The whole body as received. */
  raw: string
  /** For a non-SSE answer, its JSON body. */
  body: any
}

export interface PostOptions {
  signal?: AbortSignal
  headers?: Record<string, string>
  /** Called for every event as it arrives (to abort mid-stream, for instance). */
  onEvent?: (event: SseEvent) => void
  rawBody?: string
}

export async function postChat(base: string, body: unknown, opts: PostOptions = {}): Promise<ChatResult> {
  const res = await fetch(`${base}/api/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...opts.headers },
    body: opts.rawBody ?? JSON.stringify(body),
    ...(opts.signal ? { signal: opts.signal } : {})
  })
  return readSse(res, opts.onEvent)
}

/** GET /api/chat/streams/:requestId with Last-Event-ID. */
export async function resume(
  base: string,
  requestId: string,
  lastEventId?: number | string,
  opts: Omit<PostOptions, 'rawBody'> = {}
): Promise<ChatResult> {
  const res = await fetch(`${base}/api/chat/streams/${requestId}`, {
    headers: { ...(lastEventId === undefined ? {} : { 'last-event-id': String(lastEventId) }), ...opts.headers },
    ...(opts.signal ? { signal: opts.signal } : {})
  })
  return readSse(res, opts.onEvent)
}

export async function readSse(res: Response, onEvent?: (event: SseEvent) => void): Promise<ChatResult> {
  const events: SseEvent[] = []
  const comments: string[] = []
  let raw = ''
  if (!res.headers.get('content-type')?.startsWith('text/event-stream')) {
    raw = await res.text()
    let body: unknown
    try {
      body = JSON.parse(raw)
    } catch {
      body = undefined
    }
    return { status: res.status, headers: res.headers, events, comments, raw, body }
  }
  const parser = createParser({
    onEvent(message: EventSourceMessage) {
      const event = { event: message.event ?? 'message', id: message.id, data: message.data, json: JSON.parse(message.data) }
      events.push(event)
      onEvent?.(event)
    },
    onComment(comment: string) {
      comments.push(comment.trim())
    }
  })
  const decoder = new TextDecoder()
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      const text = decoder.decode(chunk, { stream: true })
      raw += text
      parser.feed(text)
    }
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err
  }
  return { status: res.status, headers: res.headers, events, comments, raw, body: undefined }
}

export const replyText = (r: ChatResult) =>
  r.events
    .filter((e) => e.event === 'chunk')
    .map((e) => e.json.text)
    .join('')
export const terminal = (r: ChatResult) => r.events.filter((e) => e.event === 'done' || e.event === 'error')
