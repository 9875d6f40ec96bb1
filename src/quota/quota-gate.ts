// The provider's quota, spent as one budget by every replica: requests and input tokens per minute
// (rate-limiter-flexible, in Redis when there is one), and the pause a Gemini 429 asks for. A turn
// over the budget waits its turn in a bounded FIFO queue for up to QUOTA_MAX_WAIT_MS, then is
// refused with 429 rate_limited before anything is sent upstream.
import { setTimeout as sleep } from 'node:timers/promises'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible'
import type { Config } from '../config.js'
import { GatewayError } from '../errors.js'
import type { SharedRedis } from '../shared/redis.js'

const KEY = 'upstream'
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
  private readonly rpm: RateLimiterAbstract | undefined
  private readonly tpm: RateLimiterAbstract | undefined
  private queue: Waiter[] = []
  private running = false
  private pausedUntil = 0
  private pauseReadAt = 0

  constructor(
    private readonly config: Config,
    private readonly redis: SharedRedis | undefined
  ) {
    const limiter = (points: number | undefined, name: string) => {
      if (points === undefined) return undefined
      const options = { points, duration: 60, keyPrefix: `gw:quota:${name}` }
      return redis ? new RateLimiterRedis({ ...options, storeClient: redis.client }) : new RateLimiterMemory(options)
    }
    this.rpm = limiter(config.UPSTREAM_RPM, 'rpm')
    this.tpm = limiter(config.UPSTREAM_TPM, 'tpm')
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
      void this.drain()
    })
  }

  /** Gemini answered 429 with RetryInfo: no replica sends anything until it has passed. */
  async pauseFor(ms: number): Promise<void> {
    const until = Date.now() + ms
    this.pausedUntil = Math.max(this.pausedUntil, until)
    if (this.redis) {
      // Keep the later of the two pauses: SET … GT is not there, so compare in one script.
      await this.redis.client
        .eval(
          "local v = tonumber(redis.call('GET', KEYS[1]) or '0') if tonumber(ARGV[1]) > v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end",
          1,
          PAUSE_KEY,
          String(until),
          String(ms)
        )
        .catch(() => {})
    }
  }

  private async pause(): Promise<number> {
    if (this.redis && Date.now() - this.pauseReadAt > PAUSE_CACHE_MS) {
      this.pauseReadAt = Date.now()
      const shared = Number(await this.redis.client.get(PAUSE_KEY).catch(() => null))
      if (shared > this.pausedUntil) this.pausedUntil = shared
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
    const rpmWait = await take(this.rpm, 1)
    if (rpmWait > 0) return rpmWait
    const tpmWait = await take(this.tpm, Math.max(1, tokens))
    if (tpmWait > 0 && this.rpm) await this.rpm.reward(KEY, 1).catch(() => {})
    return tpmWait
  }
}

/**
 * Spends `points`, or returns how long until they might be there. A refused consume still counts
 * its points in rate-limiter-flexible, so they are given back: a large turn that did not fit must
 * not starve the small ones behind it.
 */
async function take(limiter: RateLimiterAbstract | undefined, points: number): Promise<number> {
  if (!limiter) return 0
  try {
    await limiter.consume(KEY, points)
    return 0
  } catch (err) {
    if (!(err instanceof RateLimiterRes)) return 100 // the store failed: no verdict on the budget, try again shortly
    await limiter.reward(KEY, points).catch(() => {})
    return Math.max(1, err.msBeforeNext)
  }
}

function refusal(waitMs: number): GatewayError {
  return new GatewayError('rate_limited', 'The upstream quota is spent; retry later.', Math.max(1, Math.ceil(waitMs / 1000)))
}

/** About four characters a token: an estimate good enough to budget input tokens before sending. */
export const estimateTokens = (texts: readonly string[]) => Math.ceil(texts.reduce((n, t) => n + t.length, 0) / 4)
