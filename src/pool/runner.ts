// Runs chat tasks: on a Piscina pool (the product) or inline on the front thread (the benchmark
// baseline, POOL_MODE=inline). The dispatcher sees only this interface.
import { EventEmitter } from 'node:events'
import { Piscina } from 'piscina'
import type { Config } from '../config.js'
import type { ChatTask, WorkerSettings } from '../protocol.js'

export interface TaskRunner extends EventEmitter {
  /**
   * `isolated`: a retry after a worker fault runs in a separate quarantine pool, so that a turn
   * that kills its worker every time (a poison prompt) cannot take healthy conversations with it.
   */
  run(task: ChatTask, isolated?: boolean): Promise<void>
  /** Tasks handed over and not yet settled, running or queued. */
  readonly inflight: number
  /** Tasks that can run at once before the rest queue. */
  readonly capacity: number
  /** Live worker threads (0 inline). */
  readonly size: number
  /** Ends a worker whose event loop is stuck; its tasks reject and Piscina starts a replacement. */
  terminate(threadId: number): boolean
  close(): Promise<void>
}

// Tests run the front process from source; the worker is always tsc's output (the test run's
// global setup compiles it first: test/global-setup.ts).
const workerFile = import.meta.url.endsWith('.ts')
  ? new URL('../../dist/workers/chat.worker.js', import.meta.url)
  : new URL('../../workers/chat.worker.js', import.meta.url)

export function workerSettings(config: Config, baseUrl: string | undefined): WorkerSettings {
  return {
    // The embedded simulator serves every implicit deployment when there is no key.
    deployments: config.upstreams.deployments.map(({ id, provider, model, baseUrl: url, apiKey, project, location, credentialsFile }) => ({
      id,
      provider,
      model,
      ...(config.useSimulator ? { baseUrl: url ?? baseUrl, apiKey: 'simulator' } : { baseUrl: url, apiKey }),
      ...(project ? { project } : {}),
      ...(location ? { location } : {}),
      ...(credentialsFile ? { credentialsFile } : {})
    })),
    upstreamReader: config.UPSTREAM_READER,
    chaos: config.CHAOS,
    heartbeatMs: Math.max(25, Math.floor(config.WORKER_STALL_MS / 4)),
    idleTimeoutMs: config.STREAM_IDLE_TIMEOUT_MS,
    maxStreamMs: config.STREAM_MAX_MS,
    upstreamRetries: config.UPSTREAM_RETRIES
  }
}

class Counted extends EventEmitter {
  inflight = 0
  protected count(task: Promise<void>): Promise<void> {
    this.inflight++
    const settle = () => {
      this.inflight--
    }
    task.then(settle, settle)
    return task
  }
}

class PoolRunner extends Counted implements TaskRunner {
  readonly capacity: number
  private readonly pool: Piscina
  /**
   * Where retries after a worker fault run, on threads started on demand: a turn that kills its
   * worker every time then takes down only other retried turns, never the main pool's streams.
   * As dense as the main pool: under load one fault can send hundreds of turns here at once.
   */
  private readonly quarantine: Piscina

  constructor(config: Config, settings: WorkerSettings) {
    super()
    this.capacity = config.POOL_MAX_THREADS * config.POOL_TASKS_PER_WORKER
    const options = {
      filename: workerFile.href,
      // 'sync' parks an idle worker in Atomics.wait, freezing the timers and ports of streams.
      atomics: 'disabled' as const,
      resourceLimits: { maxOldGenerationSizeMb: config.WORKER_MAX_HEAP_MB },
      // Admission is ours (POOL_MAX_QUEUE), decided before a task reaches Piscina.
      maxQueue: Number.POSITIVE_INFINITY,
      // Streams are drained before close; whatever is left by then is cut.
      closeTimeout: 1_000,
      workerData: settings
    }
    this.pool = new Piscina({
      ...options,
      minThreads: config.POOL_MIN_THREADS,
      maxThreads: config.POOL_MAX_THREADS,
      concurrentTasksPerWorker: config.POOL_TASKS_PER_WORKER,
      idleTimeout: config.POOL_IDLE_TIMEOUT_MS
    })
    this.quarantine = new Piscina({
      ...options,
      minThreads: 0,
      maxThreads: config.POOL_MAX_THREADS,
      concurrentTasksPerWorker: config.POOL_TASKS_PER_WORKER,
      idleTimeout: 5_000
    })
    for (const pool of [this.pool, this.quarantine]) {
      // Without a listener, an error thrown after a worker's tasks settled would crash this process.
      pool.on('error', (err) => this.emit('error', err))
    }
  }

  run(task: ChatTask, isolated = false): Promise<void> {
    // The task reports over its port; its own result is nothing.
    return this.count((isolated ? this.quarantine : this.pool).run(task, { transferList: [task.port] }).then(() => undefined))
  }

  get size(): number {
    return this.pool.threads.length
  }

  terminate(threadId: number): boolean {
    const thread = [...this.pool.threads, ...this.quarantine.threads].find((t) => t.threadId === threadId)
    if (!thread) return false
    thread.terminate().catch(() => {}) // it is ending either way; Piscina replaces it
    return true
  }

  async close(): Promise<void> {
    await Promise.all([this.pool.close({ force: true }), this.quarantine.close({ force: true })])
  }
}

/** The same task code on the front thread: what the pool is measured against, never the product. */
class InlineRunner extends Counted implements TaskRunner {
  readonly capacity = Number.POSITIVE_INFINITY
  readonly size = 0
  constructor(private readonly task: (task: ChatTask) => Promise<void>) {
    super()
  }
  run(task: ChatTask): Promise<void> {
    return this.count(this.task(task))
  }
  terminate(): boolean {
    return false
  }
  async close(): Promise<void> {}
}

export async function createRunner(config: Config, baseUrl: string | undefined): Promise<TaskRunner> {
  const settings = workerSettings(config, baseUrl)
  if (config.POOL_MODE === 'pool') return new PoolRunner(config, settings)
  // Loaded only in this mode, so the product's front process never loads the Gemini SDK.
  const { createChatTask } = await import('../../workers/chat-task.js')
  return new InlineRunner(createChatTask(settings))
}
