// Prometheus metrics, one registry per app. Labels are closed sets (codes, causes, the deployments of
// the configuration), never request or session ids.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Usage } from './protocol.js'
import type { Timing } from './wire/framing.js'
import type { TaskRunner } from './pool/runner.js'

export function createMetrics(runner: TaskRunner, deploymentIds: readonly string[]) {
  const registry = new Registry()
  // Includes nodejs_eventloop_lag_p99_seconds: the front process's event-loop delay.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 })
  const r = { registers: [registry] }

  const activeStreams = new Gauge({ name: 'gateway_active_streams', help: 'Streams open to clients', ...r })
  new Gauge({
    name: 'gateway_queued_tasks',
    help: 'Turns waiting for a worker slot',
    ...r,
    collect() {
      this.set(Math.max(0, runner.inflight - runner.capacity))
    }
  })
  new Gauge({
    name: 'gateway_pool_threads',
    help: 'Live worker threads',
    ...r,
    collect() {
      this.set(runner.size)
    }
  })
  new Gauge({
    name: 'gateway_pool_utilization',
    help: 'Turns running on workers / worker slots (0..1)',
    ...r,
    collect() {
      this.set(Number.isFinite(runner.capacity) ? Math.min(1, runner.inflight / runner.capacity) : 0)
    }
  })
  // Counted from the pool's own record of threads that died (runner.ts), one per thread however many
  // turns it failed, never for one retired idle or closed.
  const workerRestarts = new Counter({
    name: 'gateway_worker_restarts_total',
    help: 'Workers replaced, by cause',
    labelNames: ['cause'],
    ...r
  })
  runner.on('workerDied', (_threadId: number, cause: string) => workerRestarts.inc({ cause }))
  const workerFaults = new Counter({
    name: 'gateway_worker_faults_total',
    help: 'Turn attempts a worker fault ended (retried or not), by cause',
    labelNames: ['cause'],
    ...r
  })
  const streams = new Counter({
    name: 'gateway_streams_total',
    help: 'Streams ended, by outcome (done, an error code, or client_closed)',
    labelNames: ['outcome'],
    ...r
  })
  const ttft = new Histogram({
    name: 'gateway_time_to_first_chunk_seconds',
    help: 'Admission to first chunk written',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    ...r
  })
  const duration = new Histogram({
    name: 'gateway_stream_duration_seconds',
    help: 'Admission to the terminal event',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    ...r
  })
  const tokens = new Counter({ name: 'gateway_tokens_total', help: 'Tokens reported by the upstream', labelNames: ['direction'], ...r })
  const upstreamErrors = new Counter({
    name: 'gateway_upstream_errors_total',
    help: 'Streams ended by an upstream failure, by code',
    labelNames: ['code'],
    ...r
  })
  const retries = new Counter({
    name: 'gateway_retries_total',
    help: 'Transparent retries before the first chunk, by the fault retried',
    labelNames: ['code'],
    ...r
  })
  const admissionRefused = new Counter({
    name: 'gateway_admission_refused_total',
    help: 'Requests refused before a stream started, by code',
    labelNames: ['code'],
    ...r
  })

  const deployment = { labelNames: ['deployment'], ...r }
  const deploymentRequests = new Counter({
    name: 'gateway_deployment_requests_total',
    help: 'Upstream calls routed to a deployment',
    ...deployment
  })
  const deploymentTokens = new Counter({
    name: 'gateway_deployment_tokens_total',
    help: 'Tokens reported by a deployment, by direction (in, out, thought)',
    labelNames: ['deployment', 'direction'],
    ...r
  })
  const deploymentRateLimited = new Counter({
    name: 'gateway_deployment_rate_limited_total',
    help: '429s a deployment answered',
    ...deployment
  })
  const deploymentCooldowns = new Counter({
    name: 'gateway_deployment_cooldowns_total',
    help: 'Times a deployment was cooled down',
    ...deployment
  })
  const deploymentHeadroom = new Gauge({
    name: 'gateway_deployment_headroom',
    help: "What is left of a deployment's tighter budget this minute (0..1), as last seen when routing",
    ...deployment
  })
  for (const id of deploymentIds) {
    for (const counter of [deploymentRequests, deploymentRateLimited, deploymentCooldowns]) counter.inc({ deployment: id }, 0)
    deploymentHeadroom.set({ deployment: id }, 1)
  }

  const redisUp = new Gauge({
    name: 'gateway_redis_up',
    help: 'Whether the shared Redis answers (1) or not (0); absent without REDIS_URL',
    registers: []
  })
  const redisErrors = new Counter({
    name: 'gateway_redis_errors_total',
    help: 'Redis commands that failed, by operation',
    labelNames: ['op'],
    ...r
  })

  return {
    registry,
    admissionRefused,
    /** Redis is configured: its state joins the scrape. */
    redisState(up: boolean) {
      if (!registry.getSingleMetric('gateway_redis_up')) registry.registerMetric(redisUp)
      redisUp.set(up ? 1 : 0)
    },
    redisFailed: (op: string) => redisErrors.inc({ op }),
    streamStarted: () => activeStreams.inc(),
    streamEnded(outcome: string, timing: Timing, usage: Usage | undefined) {
      activeStreams.dec()
      streams.inc({ outcome })
      duration.observe(timing.totalMs / 1000)
      if (timing.ttftMs !== null) ttft.observe(timing.ttftMs / 1000)
      if (usage) {
        tokens.inc({ direction: 'in' }, usage.promptTokens)
        tokens.inc({ direction: 'out' }, usage.outputTokens)
        if (usage.thoughtTokens) tokens.inc({ direction: 'thought' }, usage.thoughtTokens)
      }
      if (outcome.startsWith('upstream_') || outcome === 'safety_blocked') upstreamErrors.inc({ code: outcome })
    },
    retried: (code: string) => retries.inc({ code }),
    deploymentPicked: (id: string) => deploymentRequests.inc({ deployment: id }),
    deploymentRateLimited: (id: string) => deploymentRateLimited.inc({ deployment: id }),
    deploymentCooled: (id: string) => deploymentCooldowns.inc({ deployment: id }),
    deploymentHeadroom: (id: string, headroom: number) => deploymentHeadroom.set({ deployment: id }, headroom),
    deploymentUsage(id: string, usage: Usage) {
      deploymentTokens.inc({ deployment: id, direction: 'in' }, usage.promptTokens)
      deploymentTokens.inc({ deployment: id, direction: 'out' }, usage.outputTokens)
      if (usage.thoughtTokens) deploymentTokens.inc({ deployment: id, direction: 'thought' }, usage.thoughtTokens)
    },
    /** A turn's attempt ended by a worker fault; the worker's own death is counted once, from the runner. */
    workerFault(cause: string, _threadId?: number) {
      workerFaults.inc({ cause })
    }
  }
}

export type Metrics = ReturnType<typeof createMetrics>
