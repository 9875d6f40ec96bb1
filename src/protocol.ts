// Everything that crosses the thread boundary, declared once. Types only: both sides use
// `import type`, so a worker never loads Fastify and the front process never loads the SDK.
//
//   front process                               worker thread
//   ─────────────                               ─────────────
//   pool.run(ChatTask, [port]) ───────────────▶ chat.worker.ts
//   port1 ◀── string (framed chunk events) ──── port2   (hot path: one clone of a string)
//         ◀── StartMessage | HeartbeatMessage ─         (watchdog input)
//         ◀── RetryMessage ────────────────────         (metrics)
//         ◀── DoneMessage | ErrorMessage ──────         (exactly one, last)
//         ──▶ CancelMessage ───────────────────▶        (client gone, deadline, drain)
import type { MessagePort } from 'node:worker_threads'

/** Settings every worker gets once, as Piscina's `workerData`. */
export interface WorkerSettings {
  apiKey: string
  baseUrl: string | undefined
  upstreamReader: 'gateway' | 'sdk'
  chaos: boolean
  heartbeatMs: number
  ttftTimeoutMs: number
  idleTimeoutMs: number
  maxStreamMs: number
  upstreamRetries: number
}

export interface Turn {
  role: 'user' | 'model'
  text: string
}

export interface GenerationOptions {
  temperature?: number
  topP?: number
  topK?: number
  maxOutputTokens?: number
}

/** One upstream call: the whole conversation so far, the new user turn last. */
export interface UpstreamRequest {
  model: string
  turns: Turn[]
  system?: string
  generation?: GenerationOptions
}

export interface ChatTask {
  port: MessagePort
  requestId: string
  request: UpstreamRequest
  /** The done message carries the whole reply only when a session needs it. */
  wantText: boolean
  /** Frame chunks as OpenAI `chat.completion.chunk` events instead of the gateway's `chunk` events. */
  openai?: OpenAiFraming
}

export interface OpenAiFraming {
  id: string
  created: number
  model: string
}

export interface Usage {
  promptTokens: number
  outputTokens: number
  totalTokens: number
}

/** Errors cross threads as plain objects: structured clone drops an Error's class and code. */
export interface WireError {
  code: string
  message: string
  retryable: boolean
  retryAfterMs?: number
}

export interface StartMessage {
  type: 'start'
  threadId: number
}
export interface HeartbeatMessage {
  type: 'hb'
}
export interface RetryMessage {
  type: 'retry'
  code: string
  attempt: number
  retryAfterMs?: number
}
export interface DoneMessage {
  type: 'done'
  finishReason: string
  usage: Usage
  text?: string
}
export interface ErrorMessage {
  type: 'error'
  error: WireError
  usage?: Usage
}

/** A string is one or more complete SSE `chunk` events, framed by the worker. */
export type WorkerMessage = string | StartMessage | HeartbeatMessage | RetryMessage | DoneMessage | ErrorMessage

export interface CancelMessage {
  type: 'cancel'
}
export type FrontMessage = CancelMessage
