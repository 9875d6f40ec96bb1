// Finds workers whose event loop is stuck. Piscina never notices an infinite loop, and the stuck
// thread cannot report itself, so the front process watches the heartbeats of every running
// stream: a thread none of whose streams was heard from for WORKER_STALL_MS is terminated.
import type { TaskRunner } from './runner.js'

export interface Watched {
  threadId: number
  seenTick: number
}

export class Watchdog {
  private tick = 0
  private readonly watched = new Set<Watched>()
  /** Threads this watchdog terminated, so their tasks' rejections read as worker_stalled. */
  private readonly stalled = new Set<number>()
  private readonly limitTicks: number
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly runner: TaskRunner,
    stallMs: number,
    private readonly onStall: (threadId: number) => void
  ) {
    const interval = Math.max(20, Math.floor(stallMs / 10))
    this.limitTicks = Math.ceil(stallMs / interval)
    this.timer = setInterval(() => this.check(), interval).unref()
  }

  watch(threadId: number): Watched {
    const entry = { threadId, seenTick: this.tick }
    this.watched.add(entry)
    return entry
  }

  /** Called per message: a counter store, no clock read on the hot path. */
  seen(entry: Watched): void {
    entry.seenTick = this.tick
  }

  unwatch(entry: Watched | undefined): void {
    if (entry) this.watched.delete(entry)
  }

  wasStalled(threadId: number | undefined): boolean {
    return threadId !== undefined && this.stalled.has(threadId)
  }

  close(): void {
    clearInterval(this.timer)
  }

  private check(): void {
    this.tick++
    for (const entry of this.watched) {
      if (this.tick - entry.seenTick <= this.limitTicks || this.stalled.has(entry.threadId)) continue
      this.stalled.add(entry.threadId)
      // Forget it later: thread ids are never reused, the set only needs to outlive the rejections.
      setTimeout(() => this.stalled.delete(entry.threadId), 60_000).unref()
      if (this.runner.terminate(entry.threadId)) this.onStall(entry.threadId)
    }
  }
}
