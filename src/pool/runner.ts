// Runs chat tasks: on a Piscina pool (the product) or inline on the front thread (the benchmark
// baseline, POOL_MODE=inline). The dispatcher sees only this interface.
import { EventEmitter } from 'node:events'
import { Piscina } from 'piscina'
import type { Config } from '../config.js'
import type { ErrorCode } from '../errors.js'
import type { ChatTask, WorkerSettings } from '../protocol.js'

/** How a worker thread ended unasked. */
export type WorkerDeathCause = Extract<ErrorCode, 'worker_crashed' | 'worker_stalled' | 'worker_out_of_memory'>

/** A task's rejection because the worker thread it was handed to died, whether or not the task had started there. */
export class WorkerDied extends Error {
  constructor(
    readonly threadId: number,
    readonly death: WorkerDeathCause,
    cause: unknown
  ) {
    super(`worker thread ${threadId} died (${death})`, { cause })
  }
}

/**
 * Runs chat tasks. Emits `workerDied(threadId, cause)` once per worker thread that ended unasked
 * (threw, exited, ran out of heap, or was terminated by the watchdog), never for one Piscina retired
 * or closed. A task whose worker died rejects with WorkerDied; any other rejection (the task could
 * not be handed to a worker at all, a structured-clone failure for instance) is the error itself.
 */
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
      // A placeholder key (the SDK reader insists on one), short and unlike any word an error would hold.
      ...(config.useSimulator ? { baseUrl: url ?? baseUrl, apiKey: 'sim-key' } : { baseUrl: url, apiKey }),
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

/** What Piscina's `workerCreate` hands over (its PiscinaWorker). */
interface PooledWorker {
  readonly id: number
  readonly destroyed: boolean
}

class PoolRunner extends Counted implements TaskRunner {
  readonly capacity: number
  /** Threads this runner terminated (the watchdog found them stuck): their end is a stall. */
  private readonly terminated = new Set<number>()
  /**
   * The worker whose death is being handled in this turn of the event loop. Piscina rejects every
   * task of a dead worker synchronously from the thread's own `error` or `exit` listener, which runs
   * right after ours; so a rejection seen before the next macrotask is that worker's.
   */
  private dying: { threadId: number; cause: WorkerDeathCause } | undefined
  private closing = false
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
      pool.on('workerCreate', (worker: PooledWorker) => this.watchDeath(pool, worker))
    }
  }

  run(task: ChatTask, isolated = false): Promise<void> {
    // The task reports over its port; its own result is nothing.
    const run = (isolated ? this.quarantine : this.pool).run(task, { transferList: [task.port] })
    return this.count(
      run.then(
        () => undefined,
        (err: unknown) => {
          throw this.dying ? new WorkerDied(this.dying.threadId, this.dying.cause, err) : err
        }
      )
    )
  }

  /**
   * One `workerDied` per thread that ends unasked. The thread's own events say how: `error` (an
   * uncaught exception, or ERR_WORKER_OUT_OF_MEMORY), or `exit` without Piscina having destroyed it
   * first (process.exit, or this runner's terminate). Piscina retires idle threads and closes pools
   * by destroying them, which marks them `destroyed` before they exit: not a death.
   */
  private watchDeath(pool: Piscina, worker: PooledWorker): void {
    // Read now: a thread's threadId reads -1 once it has stopped.
    const threadId = worker.id
    const thread = pool.threads.find((t) => t.threadId === threadId)
    if (!thread) return
    let dead = false
    const died = (cause: WorkerDeathCause) => {
      if (dead || this.closing) return
      dead = true
      this.dying = { threadId, cause }
      setImmediate(() => {
        if (this.dying?.threadId === threadId) this.dying = undefined
      })
      this.terminated.delete(threadId)
      this.emit('workerDied', threadId, cause)
    }
    // Prepended, so that they run before Piscina's own listeners reject the thread's tasks.
    thread.prependListener('error', (err: unknown) => {
      died((err as { code?: string } | null)?.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'worker_out_of_memory' : 'worker_crashed')
    })
    thread.prependListener('exit', () => {
      if (this.terminated.has(threadId)) died('worker_stalled')
      else if (!worker.destroyed) died('worker_crashed')
    })
  }

  get size(): number {
    return this.pool.threads.length
  }

  terminate(threadId: number): boolean {
    const thread = [...this.pool.threads, ...this.quarantine.threads].find((t) => t.threadId === threadId)
    if (!thread) return false
    this.terminated.add(threadId)
    thread.terminate().catch(() => {}) // it is ending either way; Piscina replaces it
    return true
  }

  async close(): Promise<void> {
    this.closing = true
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
