// Everything that crosses the thread boundary, declared once. Types only: both sides use
// `import type`, so a worker never loads Fastify and the front process never loads the SDK.
//
//   front process                               worker thread
//   ─────────────                               ─────────────
//   pool.run(ChatTask, [port]) ───────────────▶ chat.worker.ts
//   port1 ◀── string ─────────────────────── port2   (framed chunk, thought, tool_call events: the hot path)
//         ◀── AnswerMessage ───────────────         (the first answer chunk, when thoughts came first)
//         ◀── StartMessage | HeartbeatMessage ─     (watchdog input)
//         ◀── RetryMessage ────────────────         (metrics)
//         ◀── DoneMessage | ErrorMessage ──         (exactly one, last)
//         ──▶ CancelMessage ───────────────▶        (client gone, deadline, drain)
import type { MessagePort } from 'node:worker_threads'
import type { ErrorCode } from './errors.js'

/** One upstream a worker can call (UPSTREAMS_FILE, or one per allowed model): what the worker needs of it, secrets included. */
export interface DeploymentSettings {
  id: string
  provider: 'gemini' | 'vertex' | 'openai'
  /** The provider's model name. */
  model: string
  /** unset: the provider's own endpoint. */
  baseUrl?: string
  apiKey?: string
  /** Vertex: the Google Cloud project and region. */
  project?: string
  location?: string
  /** Vertex: a service-account key file; unset: Application Default Credentials. */
  credentialsFile?: string
}

/** Settings every worker gets once, as Piscina's `workerData`. */
export interface WorkerSettings {
  deployments: DeploymentSettings[]
  upstreamReader: 'gateway' | 'sdk'
  chaos: boolean
  heartbeatMs: number
  idleTimeoutMs: number
  maxStreamMs: number
  upstreamRetries: number
}

/**
 * One part of a turn, in Gemini's shape: the gateway's canonical form for conversations. A model
 * turn's parts are kept as the upstream sent them (signatures included), thought text left out,
 * streamed call arguments assembled; kinds the gateway does not read (executableCode, inlineData…)
 * pass through untouched.
 */
export interface Part {
  text?: string
  thought?: boolean
  thoughtSignature?: string
  /** `id`: the provider's own, or one the gateway made (see src/wire/tool-call-id.ts), never sent upstream. */
  functionCall?: { name: string; args?: Record<string, unknown>; id?: string }
  functionResponse?: { name: string; response: Record<string, unknown>; id?: string }
  [kind: string]: unknown
}

export interface Content {
  role: 'user' | 'model'
  parts: Part[]
}

export interface GenerationOptions {
  temperature?: number
  topP?: number
  topK?: number
  maxOutputTokens?: number
}

/** A function the model may call; `parameters` is a JSON Schema object. */
export interface ToolDeclaration {
  name: string
  description?: string
  parameters?: Record<string, unknown>
}

/** Gemini's functionCallingConfig: auto, none, required (any), or one named function. */
export type ToolChoice = 'auto' | 'none' | 'required' | { name: string }

export interface ThinkingOptions {
  /** Tokens: -1 dynamic, 0 off. */
  budget?: number
  level?: 'minimal' | 'low' | 'medium' | 'high'
  /** Whether thoughts reach the client (`thought` events, `reasoning_content`). */
  include?: boolean
}

/** One upstream call: the whole conversation so far, the new user turn last. */
export interface UpstreamRequest {
  model: string
  contents: Content[]
  system?: string
  generation?: GenerationOptions
  tools?: ToolDeclaration[]
  toolChoice?: ToolChoice
  thinking?: ThinkingOptions
  /** false: one call per reply (OpenAI's parallel_tool_calls); Gemini has no such switch, so the worker keeps the first. */
  parallelToolCalls?: boolean
}

export interface ChatTask {
  port: MessagePort
  requestId: string
  request: UpstreamRequest
  /** The done message carries the model's turn only when a session keeps it. */
  wantContent: boolean
  /** Frame chunks as OpenAI `chat.completion.chunk` events instead of the gateway's `chunk` events. */
  openai?: OpenAiFraming
  /** Epoch ms: the first token's deadline (STREAM_TTFT_TIMEOUT_MS), one for every attempt of the turn. */
  firstTokenBy: number
  /** 1, or 2 for the retry after a worker fault (in the quarantine pool). */
  attempt: number
  /** The id of the deployment to call (DeploymentSettings). */
  deployment: string
  /**
   * Another deployment could serve the turn: a 429, 5xx or refused connection before the first
   * event ends the attempt at once (`reroute`) instead of being retried here.
   */
  alternatives: boolean
}

export interface OpenAiFraming {
  id: string
  created: number
  model: string
}

export interface Usage {
  promptTokens: number
  /** Answer tokens, thoughts not included. */
  outputTokens: number
  totalTokens: number
  thoughtTokens?: number
  /** Prompt tokens served from the provider's context cache, where it reports them. */
  cachedTokens?: number
}

/** A complete function call as the client sees it (`tool_call` event). */
export interface ToolCall {
  id: string
  name: string
  args: Record<string, unknown>
  signature?: string
}

/** Errors cross threads as plain objects: structured clone drops an Error's class and code. */
export interface WireError {
  code: ErrorCode
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
  code: ErrorCode
  attempt: number
  retryAfterMs?: number
}
export interface DoneMessage {
  type: 'done'
  finishReason: string
  usage: Usage
  /** How many tool_call events the reply ended with (0: none). */
  toolCalls: number
  /** The model's turn, when the task asked for it (wantContent). */
  content?: Content
  /** The thought text, when the task asked for the content and for thoughts. */
  thoughts?: string
}
/** Sent once, after the frames that hold the first answer chunk, when thoughts came before it (TTFT). */
export interface AnswerMessage {
  type: 'answer'
}

export interface ErrorMessage {
  type: 'error'
  error: WireError
  usage?: Usage
  /** The deployment failed before the client saw anything (ChatTask.alternatives): the front may send the turn elsewhere. */
  reroute?: boolean
  /** With reroute: the provider never answered (refused, reset or timed out connection), evidence about the deployment itself. */
  unreachable?: boolean
}

/** A string is one or more complete SSE events (chunk, thought, tool_call), framed by the worker. */
export type WorkerMessage = string | StartMessage | HeartbeatMessage | RetryMessage | AnswerMessage | DoneMessage | ErrorMessage

export interface CancelMessage {
  type: 'cancel'
}
export type FrontMessage = CancelMessage
