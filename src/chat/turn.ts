// One admitted chat turn, whatever its route and dialect, from the first byte of its response to its
// one terminal: dispatch, relay into the sink and the resume log, session commit or release, the
// client leaving (cancel at once, or after RESUME_GRACE_MS if nobody resumed), drain, metrics, log line.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config.js'
import type { Content, DoneMessage, UpstreamRequest, Usage, WireError } from '../protocol.js'
import type { Lifecycle, OpenStream } from '../lifecycle.js'
import type { Metrics } from '../metrics.js'
import type { QuotaGate } from '../quota/quota-gate.js'
import type { Route, Router } from '../routing/router.js'
import { tenantOf, type StreamLog } from '../resume/stream-log.js'
import type { SessionStore } from '../sessions/store.js'
import type { StreamCaps } from '../security.js'
import { wireError } from '../wire/error-event.js'
import { configRedactor, redactedError } from '../wire/redact.js'
import { lastIdOf } from '../wire/ids.js'
import type { Dispatcher, StreamHandle } from './dispatch.js'
import { openSink, type TurnDialect } from './sinks.js'
import type { Heartbeats } from './sse-writer.js'

/** Marks a request whose log line is not the generic one: a turn writes its own when it ends. */
export const TURN_LOGGED = 'turn'

/** How long a reader that fell too far behind keeps its socket after its terminal event was written. */
const TOO_SLOW_CLOSE_MS = 5_000

export interface TurnDeps {
  config: Config
  dispatcher: Dispatcher
  sessions: SessionStore
  heartbeats: Heartbeats
  lifecycle: Lifecycle
  metrics: Metrics
  streamLog: StreamLog
  quota: QuotaGate
  router: Router
  caps: StreamCaps
}

export interface TurnSpec {
  /** The session whose turn lock is held, or null (stateless). */
  sessionId: string | null
  /** The user's content of this turn, which a session appends with the model's when it completes. */
  user: Content
  /** For the log line with LOG_CONTENT=1. */
  userText: string
  request: UpstreamRequest
  /** Gives back the client's stream slot. */
  giveBack: () => void
  dialect: TurnDialect
  /** The deployment admission chose, and the input tokens it budgeted. */
  route: Route
  tokens: number
}

export function runTurn(deps: TurnDeps, req: FastifyRequest, reply: FastifyReply, spec: TurnSpec): void {
  const { config, dispatcher, sessions, lifecycle, metrics, streamLog, router } = deps
  const { sessionId, dialect } = spec
  const requestId = req.id
  let ended = false
  /** The id of the last event the stream produced, which its end in the resume log carries. */
  let lastId = 0
  let retries = 0
  let graceTimer: NodeJS.Timeout | undefined
  /** The deployment serving the turn: admission's choice, then whichever a failure before the first event moved it to. */
  let route = spec.route
  const tried: string[] = []

  req.outcome = TURN_LOGGED
  void reply.header('x-request-id', requestId)
  const sink = openSink(reply, dialect, {
    heartbeats: deps.heartbeats,
    bufferBytes: config.STREAM_BUFFER_BYTES,
    // Written with the first event, so that it names the deployment that served the turn.
    meta: () => ({ requestId, sessionId, model: spec.request.model, deployment: route.deployment.id }),
    keep: (terminal) => streamLog.end(requestId, terminal, lastId),
    thoughtsFirst: spec.request.thinking?.include === true,
    onTooSlow: () => {
      // It stopped reading: the terminal event may never drain, so do not hold the socket for it.
      stop(wireError('client_too_slow', `More than ${config.STREAM_BUFFER_BYTES} bytes were waiting for this client.`))
      setTimeout(() => reply.raw.destroy(), TOO_SLOW_CLOSE_MS).unref()
    }
  })

  /** The one place a turn ends: every path (done, error, cancel, drain) comes here once. */
  const end = (outcome: string, usage?: Usage) => {
    if (ended) return
    ended = true
    spec.giveBack()
    clearTimeout(graceTimer)
    lifecycle.untrack(open)
    const timing = sink.timing
    metrics.streamEnded(outcome, timing, usage)
    req.log.info(
      {
        requestId,
        sessionId,
        model: spec.request.model,
        deployment: route.deployment.id,
        dialect: dialect.name,
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
    sink.error(error)
    end(outcome)
  }

  if (sink.resumable) streamLog.open(requestId, tenantOf(req.clientKey))
  metrics.streamStarted()

  const handle: StreamHandle = dispatcher.start(
    {
      requestId,
      request: spec.request,
      // A session keeps the model's turn; a JSON body is made of it.
      wantContent: sessionId !== null || dialect.name === 'openai-json',
      ...(dialect.name === 'gateway' ? {} : { openai: dialect.framing }),
      deployment: route.deployment.id,
      alternatives: route.alternatives
    },
    {
      chunks: (frames) => {
        sink.chunks(frames)
        if (sink.resumable) {
          lastId = lastIdOf(frames)
          streamLog.append(requestId, frames, lastId)
        }
      },
      answer: () => sink.answered(),
      retry: (code, retryAfterMs) => {
        retries++
        metrics.retried(code)
        // A 429's RetryInfo speaks for the deployment's whole project: no replica calls it meanwhile.
        if (code === 'upstream_rate_limited')
          router.failed(route.deployment, wireError(code, undefined, retryAfterMs ? { retryAfterMs } : {}))
      },
      reroute: async (error, unreachable) => {
        retries++
        metrics.retried(error.code)
        // What the failure says about the deployment: one turn's 5xx alone cools nothing (routing/failures.ts).
        router.failed(route.deployment, error, { request: spec.request, unreachable })
        tried.push(route.deployment.id)
        const next = await router.reroute(spec.request.model, spec.tokens, tried)
        if (!next) return undefined
        route = next
        return { deployment: next.deployment.id, alternatives: next.alternatives }
      },
      done: (message: DoneMessage) => {
        // A session turn always ends its lock: appended with the model's content, or released without it.
        if (sessionId && message.content) void sessions.commit(sessionId, [spec.user, message.content])
        else release()
        metrics.deploymentUsage(route.deployment.id, message.usage)
        router.succeeded(route.deployment)
        sink.done(message)
        end('done', message.usage)
      },
      error: (error) => {
        if (error.code === 'upstream_rate_limited') router.failed(route.deployment, error)
        release()
        // The worker redacted the provider's text already; this is the last line of defence.
        sink.error(redactedError(error, configRedactor(config)))
        end(error.code)
      }
    }
  )

  const open: OpenStream = { shutdown: () => stop(wireError('shutting_down')) }
  lifecycle.track(open)

  const left = () => {
    if (ended) return
    sink.abandon()
    if (!sink.resumable || config.RESUME_GRACE_MS === 0) {
      stop(wireError('client_disconnected'), 'client_closed')
      return
    }
    // Keep generating for a while, so that the client can resume; stop once nobody follows.
    const check = () => {
      void streamLog.followed(requestId).then((followed) => {
        if (ended) return
        if (followed) graceTimer = setTimeout(check, config.RESUME_GRACE_MS).unref()
        else stop(wireError('client_disconnected'), 'client_closed')
      })
    }
    graceTimer = setTimeout(check, config.RESUME_GRACE_MS).unref()
  }
  // It may have left while the turn waited for admission (quota, the session's lock).
  if (reply.raw.closed) left()
  else reply.raw.on('close', left)
}
