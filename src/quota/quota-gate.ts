// The provider's quota, spent as one budget by every replica: requests and input tokens per minute
// (shared-budget.ts: in Redis when there is one, a local share while it cannot answer), and the
// pause a Gemini 429 asks for. A turn over the budget waits its turn in a bounded FIFO queue for up
// to QUOTA_MAX_WAIT_MS, then is refused with 429 rate_limited before anything is sent upstream.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../config.js'
import { GatewayError } from '../errors.js'
import type { SharedRedis } from '../shared/redis.js'
import { SharedBudget } from './shared-budget.js'

const PAUSE_KEY = 'gw:quota:paused-until'
/** How long a read of the shared pause is trusted, so an idle gate costs no Redis call per turn. */
const PAUSE_CACHE_MS = 200

interface Waiter {
  tokens: number
  deadline: number
  resolve(): void
  reject(err: Error): void
}

export class QuotaGate {
  private readonly rpm: SharedBudget | undefined
  private readonly tpm: SharedBudget | undefined
  private queue: Waiter[] = []
  private running = false
  private pausedUntil = 0
  private pauseReadAt = 0

  constructor(
    private readonly config: Config,
    private readonly redis: SharedRedis | undefined
  ) {
    this.rpm = config.UPSTREAM_RPM === undefined ? undefined : new SharedBudget(config.UPSTREAM_RPM, 'rpm', redis)
    this.tpm = config.UPSTREAM_TPM === undefined ? undefined : new SharedBudget(config.UPSTREAM_TPM, 'tpm', redis)
  }

  /** Resolves when one upstream request of about `tokens` input tokens may be sent; throws rate_limited otherwise. */
  async acquire(tokens: number): Promise<void> {
    if (!this.rpm && !this.tpm && (await this.pause()) <= Date.now()) return
    if (this.queue.length >= this.config.QUOTA_MAX_QUEUE) throw refusal(1_000)
    await new Promise<void>((resolve, reject) => {
      this.queue.push({
        tokens: Math.min(tokens, this.config.UPSTREAM_TPM ?? tokens),
        deadline: Date.now() + this.config.QUOTA_MAX_WAIT_MS,
        resolve,
        reject
      })
      this.drain().catch((err: unknown) => {
        // Not expected (every store call answers): the waiters learn of it, none hangs.
        for (const waiter of this.queue.splice(0)) waiter.reject(err as Error)
      })
    })
  }

  /** Gemini answered 429 with RetryInfo: no replica sends anything until it has passed. */
  pauseFor(ms: number): void {
    const until = Date.now() + ms
    this.pausedUntil = Math.max(this.pausedUntil, until)
    const redis = this.redis
    if (!redis?.up) return
    // Keep the later of the two pauses: SET … GT is not there, so compare in one script.
    redis.background(
      'quota.pause',
      redis.client.eval(
        "local v = tonumber(redis.call('GET', KEYS[1]) or '0') if tonumber(ARGV[1]) > v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end",
        1,
        PAUSE_KEY,
        String(until),
        String(ms)
      )
    )
  }

  /** The pause every replica keeps; while Redis cannot answer, the one this replica knows. */
  private async pause(): Promise<number> {
    const redis = this.redis
    if (redis?.up && Date.now() - this.pauseReadAt > PAUSE_CACHE_MS) {
      this.pauseReadAt = Date.now()
      try {
        const shared = Number(await redis.client.get(PAUSE_KEY))
        if (shared > this.pausedUntil) this.pausedUntil = shared
      } catch (err) {
        redis.failed('quota.pause', err)
      }
    }
    return this.pausedUntil
  }

  /** One loop serves the queue in order, so a waiter is never overtaken by a later one. */
  private async drain(): Promise<void> {
    if (this.running) return
    this.running = true
    try {
      for (let head = this.queue[0]; head; head = this.queue[0]) {
        const waitMs = await this.tryTake(head.tokens)
        if (waitMs === 0) {
          this.queue.shift()
          head.resolve()
          continue
        }
        // Whoever cannot be served within their deadline is refused now, not when it passes.
        const readyAt = Date.now() + waitMs
        const late = this.queue.filter((waiter) => waiter.deadline < readyAt)
        this.queue = this.queue.filter((waiter) => waiter.deadline >= readyAt)
        for (const waiter of late) waiter.reject(refusal(waitMs))
        const next = this.queue[0]
        if (next) await sleep(Math.min(waitMs, Math.max(1, next.deadline - Date.now())))
      }
    } finally {
      this.running = false
    }
  }

  /** 0 when the request may go now (its points are spent), else how long until it might. */
  private async tryTake(tokens: number): Promise<number> {
    const paused = (await this.pause()) - Date.now()
    if (paused > 0) return paused
    const rpmWait = (await this.rpm?.take(1)) ?? 0
    if (rpmWait > 0) return rpmWait
    const tpmWait = (await this.tpm?.take(Math.max(1, tokens))) ?? 0
    if (tpmWait > 0) await this.rpm?.giveBack(1)
    return tpmWait
  }
}

function refusal(waitMs: number): GatewayError {
  return new GatewayError('rate_limited', 'The upstream quota is spent; retry later.', Math.max(1, Math.ceil(waitMs / 1000)))
}

/** About four characters a token: an estimate good enough to budget input tokens before sending. */
export const estimateTokens = (texts: readonly string[]) => Math.ceil(texts.reduce((n, t) => n + t.length, 0) / 4)
