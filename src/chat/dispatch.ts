// Hands a chat turn to a worker and relays what comes back. Owns the worker-fault policy:
// a fault becomes one error event, and a turn that had sent no chunk yet is retried once, in the
// quarantine pool (it may be the turn that caused the fault). A task that never reached a worker
// (it could not be handed over) is no worker fault: it ends with internal_error, unretried. A
// deployment that failed before the first event (the worker says `reroute`) is replaced by the one
// `events.reroute` names, if any.
//
//   start() ─▶ MessageChannel ─▶ runner.run({port2}) ─▶ worker
//                  port1 ◀── string | start | hb | retry | done | error
//   cancel() ──▶ port1.postMessage({type:'cancel'})
//   run() rejects / port closes without a result ─▶ fault ─▶ retry once or error event
//   error{reroute} ─▶ events.reroute() ─▶ a new task on the next deployment, or the error event
import { MessageChannel, type MessagePort } from 'node:worker_threads'
import type { ChatTask, DoneMessage, WireError, WorkerMessage } from '../protocol.js'
import type { ErrorCode } from '../errors.js'
import { wireError } from '../wire/error-event.js'
import { WorkerDied, type TaskRunner } from '../pool/runner.js'
import type { Watchdog, Watched } from '../pool/watchdog.js'

export interface StreamEvents {
  /** One or more framed SSE events (chunk, thought, tool_call). */
  chunks(frames: string): void
  /** The frames just relayed held the first answer chunk (sent only when thoughts came first). */
  answer(): void
  /** A retry before the first chunk: an upstream fault retried by the worker, or a worker fault retried here. */
  retry(code: ErrorCode, retryAfterMs?: number): void
  /**
   * The deployment failed before the first event (`unreachable`: it never answered): the one to try
   * next, or undefined (then `error` follows).
   */
  reroute(error: WireError, unreachable: boolean): Promise<Pick<ChatTask, 'deployment' | 'alternatives'> | undefined>
  /** Exactly one of `done` and `error`, last. */
  done(message: DoneMessage): void
  error(error: WireError): void
}

export interface StreamHandle {
  /** The client is gone: stop the upstream call. Nothing more is reported. */
  cancel(): void
  /** The worker threads that served the turn, one per attempt (for the log line). */
  readonly threads: number[]
}

export type FaultCode = Extract<ErrorCode, 'worker_crashed' | 'worker_stalled' | 'worker_out_of_memory'>

export class Dispatcher {
  constructor(
    private readonly runner: TaskRunner,
    private readonly watchdog: Watchdog | undefined,
    private readonly maxQueue: number,
    /** STREAM_TTFT_TIMEOUT_MS: counted from start(), across every attempt. */
    private readonly ttftTimeoutMs: number,
    private readonly onFault: (code: FaultCode, threadId: number | undefined) => void
  ) {}

  /** Past POOL_MAX_QUEUE waiting turns, refuse before any upstream quota is spent. */
  get full(): boolean {
    return this.runner.inflight >= this.runner.capacity + this.maxQueue
  }

  start(first: Omit<ChatTask, 'port' | 'firstTokenBy' | 'attempt'>, events: StreamEvents): StreamHandle {
    const firstTokenBy = Date.now() + this.ttftTimeoutMs
    let turn = first
    let ended = false
    let chunked = false
    let attempts = 0
    let faults = 0
    let port: MessagePort
    let watched: Watched | undefined
    const threads: number[] = []

    const end = () => {
      ended = true
      this.watchdog?.unwatch(watched)
    }

    const rerouted = async (error: WireError, unreachable: boolean) => {
      const next = await events.reroute(error, unreachable).catch(() => undefined)
      if (ended) return
      if (!next) {
        end()
        events.error(error)
        return
      }
      turn = { ...turn, ...next }
      // A turn that faulted a worker stays in quarantine.
      launch(faults > 0)
    }

    const launch = (isolated: boolean) => {
      attempts++
      const channel = new MessageChannel()
      const current = channel.port1
      port = current
      let threadId: number | undefined
      let settled = false

      const fault = (err: unknown) => {
        if (settled || ended) return
        settled = true
        this.watchdog?.unwatch(watched)
        current.close()
        // Piscina rejects every task of a dead worker, those it had not started yet too (no `start` came).
        const death = err instanceof WorkerDied ? err : undefined
        const thread = death?.threadId ?? threadId
        if (thread === undefined) {
          // No worker took it: it could not be handed over (a structured-clone failure). Not a worker's
          // fault, and a retry would fail alike.
          end()
          events.error(wireError('internal_error'))
          return
        }
        const code = death?.death ?? this.classify(err, thread)
        this.onFault(code, thread)
        if (!chunked && ++faults === 1) {
          events.retry(code)
          launch(true)
          return
        }
        end()
        events.error(wireError(code))
      }

      current.on('message', (message: WorkerMessage) => {
        if (ended || settled) return
        if (watched) this.watchdog?.seen(watched)
        if (typeof message === 'string') {
          chunked = true
          events.chunks(message)
          return
        }
        switch (message.type) {
          case 'start':
            threadId = message.threadId
            threads.push(threadId)
            watched = this.watchdog?.watch(message.threadId)
            break
          case 'retry':
            events.retry(message.code, message.retryAfterMs)
            break
          case 'answer':
            events.answer()
            break
          case 'done':
            settled = true
            end()
            events.done(message)
            break
          case 'error':
            settled = true
            if (message.reroute && !chunked) {
              void rerouted(message.error, message.unreachable === true)
              break
            }
            end()
            events.error(message.error)
            break
        }
      })

      const task = this.runner.run({ ...turn, firstTokenBy, attempt: attempts, port: channel.port2 }, isolated)
      task.then(undefined, fault)
      // A port closed without a result: the worker died (Piscina's rejection says how) or a bug ended the task early.
      current.on('close', () => {
        if (!settled && !ended) task.then(() => fault(new Error('the worker ended the turn without a result')), fault)
      })
    }

    launch(false)
    return {
      threads,
      cancel: () => {
        if (ended) return
        end()
        port.postMessage({ type: 'cancel' })
      }
    }
  }

  /** A task that failed on a worker that did not die: the watchdog's verdict, or what the rejection says. */
  private classify(err: unknown, threadId: number | undefined): FaultCode {
    if (this.watchdog?.wasStalled(threadId)) return 'worker_stalled'
    if ((err as { code?: string } | null)?.code === 'ERR_WORKER_OUT_OF_MEMORY') return 'worker_out_of_memory'
    return 'worker_crashed'
  }
}
