// One admitted chat turn, from the first byte of its SSE response to its one terminal event:
// dispatch, relay into the writer and the resume log, session commit or release, the client
// leaving (cancel at once, or after RESUME_GRACE_MS if nobody resumed), drain, metrics, log line.
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { Config } from '../config.js'
import { wireError } from '../errors.js'
import type { Content, DoneMessage, UpstreamRequest, Usage, WireError } from '../protocol.js'
import type { Lifecycle, OpenStream } from '../lifecycle.js'
import type { Metrics } from '../metrics.js'
import type { QuotaGate } from '../quota/quota-gate.js'
import { lastIdOf, type StreamLog } from '../resume/stream-log.js'
import type { SessionStore } from '../sessions/store.js'
import type { StreamCaps } from '../security.js'
import type { Dispatcher, StreamHandle } from './dispatch.js'
import type { Dialect } from './sse-frames.js'
import { SseWriter, type Heartbeats } from './sse-writer.js'

export interface TurnDeps {
  config: Config
  dispatcher: Dispatcher
  sessions: SessionStore
  heartbeats: Heartbeats
  lifecycle: Lifecycle
  metrics: Metrics
  streamLog: StreamLog
  quota: QuotaGate
  caps: StreamCaps
}

export interface TurnSpec {
  requestId: string
  sessionId: string | null
  /** The user's content of this turn, which a session appends with the model's when it completes. */
  user: Content
  /** For the log line with LOG_CONTENT=1. */
  userText: string
  request: UpstreamRequest
  log: FastifyBaseLogger
  /** Gives back the client's stream slot. */
  onEnd: () => void
  dialect: Dialect
}

export function runTurn(deps: TurnDeps, reply: FastifyReply, spec: TurnSpec): void {
  const { config, dispatcher, sessions, lifecycle, metrics, streamLog, quota } = deps
  const { requestId, sessionId, dialect } = spec
  let ended = false
  let retries = 0
  let graceTimer: NodeJS.Timeout | undefined

  const writer = new SseWriter(
    reply.raw,
    deps.heartbeats,
    config.STREAM_BUFFER_BYTES,
    () => {
      // It stopped reading: the terminal event may never drain, so do not hold the socket for it.
      stop(wireError('client_too_slow', `More than ${config.STREAM_BUFFER_BYTES} bytes were waiting for this client.`))
      setTimeout(() => reply.raw.destroy(), 5_000).unref()
    },
    spec.request.thinking?.include === true
  )

  /** The one place a turn ends: every path (done, error, cancel, drain) comes here once. */
  const end = (terminal: string, outcome: string, usage?: Usage) => {
    if (ended) return
    ended = true
    spec.onEnd()
    clearTimeout(graceTimer)
    streamLog.end(requestId, terminal)
    lifecycle.untrack(open)
    const timing = writer.timing
    metrics.streamEnded(outcome, timing, usage)
    spec.log.info(
      {
        requestId,
        sessionId,
        model: spec.request.model,
        outcome,
        retries,
        threads: handle.threads,
        ttftMs: timing.ttftMs,
        durationMs: timing.totalMs,
        promptTokens: usage?.promptTokens,
        outputTokens: usage?.outputTokens,
        ...(config.LOG_CONTENT ? { message: spec.userText } : {})
      },
      'chat turn'
    )
  }
  const release = () => {
    if (sessionId) void sessions.release(sessionId)
  }
  /** Ends the turn from this side: the upstream call is cancelled and the session keeps nothing. */
  const stop = (error: WireError, outcome: string = error.code) => {
    if (ended) return
    handle.cancel()
    release()
    end(writer.finish(dialect.error(error)), outcome)
  }

  writer.open(dialect.meta ? { requestId, sessionId, model: spec.request.model } : null, {
    ...reply.getHeaders(),
    'x-request-id': requestId
  })
  streamLog.open(requestId)
  metrics.streamStarted()

  const handle: StreamHandle = dispatcher.start(
    { requestId, request: spec.request, wantContent: sessionId !== null, ...(dialect.openai ? { openai: dialect.openai } : {}) },
    {
      chunks: (frames) => {
        writer.chunks(frames)
        streamLog.append(requestId, frames, lastIdOf(frames))
      },
      answer: () => writer.answered(),
      retry: (code, retryAfterMs) => {
        retries++
        metrics.retried(code)
        // Gemini's RetryInfo speaks for the whole project: every replica waits, not just this turn.
        if (retryAfterMs) quota.pauseFor(retryAfterMs)
      },
      done: (message: DoneMessage) => {
        if (sessionId && message.content) void sessions.commit(sessionId, [spec.user, message.content])
        end(writer.finish(dialect.done(message, writer.timing)), 'done', message.usage)
      },
      error: (error) => {
        if (error.code === 'upstream_rate_limited' && error.retryAfterMs) quota.pauseFor(error.retryAfterMs)
        release()
        end(writer.finish(dialect.error(error)), error.code)
      }
    }
  )

  const open: OpenStream = { shutdown: () => stop(wireError('shutting_down')) }
  lifecycle.track(open)

  reply.raw.on('close', () => {
    if (ended) return
    writer.abandon()
    if (config.RESUME_GRACE_MS === 0) return stop(wireError('client_disconnected'), 'client_closed')
    // Keep generating for a while, so that the client can resume; stop once nobody follows.
    const check = () => {
      void streamLog.followed(requestId).then((followed) => {
        if (ended) return
        if (followed) graceTimer = setTimeout(check, config.RESUME_GRACE_MS).unref()
        else stop(wireError('client_disconnected'), 'client_closed')
      })
    }
    graceTimer = setTimeout(check, config.RESUME_GRACE_MS).unref()
  })
}
