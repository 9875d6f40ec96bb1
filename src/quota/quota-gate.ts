// The global cap on upstream spending, UPSTREAM_RPM and UPSTREAM_TPM, shared by every replica
// (shared-budget.ts: in Redis when there is one, a local share while it cannot answer). A turn over
// it waits its turn in a bounded FIFO queue for up to QUOTA_MAX_WAIT_MS, then is refused with 429
// rate_limited before anything is sent upstream. Per-deployment budgets and the cool-down a 429
// asks for are the router's (src/routing/router.ts).
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../config.js'
import { GatewayError, RETRY_AFTER_S } from '../errors.js'
import type { SharedRedis } from '../shared/redis.js'
import { RequestBudget } from './shared-budget.js'

interface Waiter {
  tokens: number
  deadline: number
  resolve(): void
  reject(err: Error): void
}

export class QuotaGate {
  private readonly budget: RequestBudget
  private queue: Waiter[] = []
  private running = false

  constructor(
    private readonly config: Config,
    redis: SharedRedis | undefined
  ) {
    this.budget = new RequestBudget({ rpm: config.UPSTREAM_RPM, tpm: config.UPSTREAM_TPM }, '', redis)
  }

  /** Resolves when one upstream request of about `tokens` input tokens may be sent; throws rate_limited otherwise. */
  async acquire(tokens: number): Promise<void> {
    if (!this.budget.limited) return
    if (this.queue.length >= this.config.QUOTA_MAX_QUEUE) throw quotaRefusal(RETRY_AFTER_S * 1000)
    await new Promise<void>((resolve, reject) => {
      this.queue.push({ tokens, deadline: Date.now() + this.config.QUOTA_MAX_WAIT_MS, resolve, reject })
      this.drain().catch((err: unknown) => {
        // Not expected (every store call answers): the waiters learn of it, none hangs.
        for (const waiter of this.queue.splice(0)) waiter.reject(err as Error)
      })
    })
  }

  /** One loop serves the queue in order, so a waiter is never overtaken by a later one. */
  private async drain(): Promise<void> {
    if (this.running) return
    this.running = true
    try {
      for (let head = this.queue[0]; head; head = this.queue[0]) {
        const waitMs = await this.budget.take(head.tokens)
        if (waitMs === 0) {
          this.queue.shift()
          head.resolve()
          continue
        }
        // Whoever cannot be served within their deadline is refused now, not when it passes.
        const readyAt = Date.now() + waitMs
        const late = this.queue.filter((waiter) => waiter.deadline < readyAt)
        this.queue = this.queue.filter((waiter) => waiter.deadline >= readyAt)
        for (const waiter of late) waiter.reject(quotaRefusal(waitMs))
        const next = this.queue[0]
        if (next) await sleep(Math.min(waitMs, Math.max(1, next.deadline - Date.now())))
      }
    } finally {
      this.running = false
    }
  }
}

/** 429 rate_limited, with Retry-After the whole seconds until the quota may be there again. */
export function quotaRefusal(waitMs: number): GatewayError {
  return new GatewayError('rate_limited', 'The upstream quota is spent; retry later.', Math.max(1, Math.ceil(waitMs / 1000)))
}

/** About four characters a token: an estimate good enough to budget input tokens before sending. */
export const estimateTokens = (texts: readonly string[]) => Math.ceil(texts.reduce((n, t) => n + t.length, 0) / 4)
