// A per-minute budget (requests or tokens) that every replica spends together in Redis
// (rate-limiter-flexible, fixed one-minute windows). While Redis cannot answer, each replica spends
// its local share instead: the budget divided by the replicas alive when Redis last answered, so
// that the fleet together stays within it. The share is counted by charging each spend times the
// replica count against the whole budget, so it follows the fleet's size with nothing rebuilt.
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible'
import type { SharedRedis } from '../shared/redis.js'

const KEY = 'upstream'
const WINDOW_S = 60

export class SharedBudget {
  private readonly remote: RateLimiterRedis | undefined
  private readonly local: RateLimiterMemory

  constructor(
    private readonly points: number,
    name: string,
    private readonly redis: SharedRedis | undefined
  ) {
    this.local = new RateLimiterMemory({ points, duration: WINDOW_S, keyPrefix: `local:${name}` })
    this.remote = redis
      ? new RateLimiterRedis({
          storeClient: redis.client,
          points,
          duration: WINDOW_S,
          keyPrefix: `gw:quota:${name}`,
          rejectIfRedisNotReady: true
        })
      : undefined
  }

  /** Spends `points`, or answers how long until they might be there (ms); 0: spent. */
  async take(points: number): Promise<number> {
    if (this.remote && this.redis?.up) {
      try {
        await this.remote.consume(KEY, points)
        return 0
      } catch (err) {
        if (err instanceof RateLimiterRes) return this.refused(this.remote, points, err)
        this.redis.failed('quota', err)
      }
    }
    const charged = points * (this.redis?.replicas ?? 1)
    try {
      await this.local.consume(KEY, charged)
      return 0
    } catch (err) {
      return err instanceof RateLimiterRes ? this.refused(this.local, charged, err) : 100
    }
  }

  /** What is left of this window's budget, as a fraction (0..1). */
  async headroom(): Promise<number> {
    if (this.remote && this.redis?.up) {
      try {
        const res = await this.remote.get(KEY)
        return res ? Math.max(0, res.remainingPoints) / this.points : 1
      } catch (err) {
        this.redis.failed('quota', err)
      }
    }
    const res = await this.local.get(KEY)
    return res ? Math.max(0, res.remainingPoints) / this.points : 1
  }

  /** Gives back what `take(points)` spent (a turn that did not go after all). */
  async giveBack(points: number): Promise<void> {
    if (this.remote && this.redis?.up) await this.remote.reward(KEY, points).catch((err: unknown) => this.redis?.failed('quota', err))
    else await this.local.reward(KEY, points * (this.redis?.replicas ?? 1))
  }

  /**
   * A refused consume still counts its points: they are given back, so that a large turn that did
   * not fit does not starve the small ones behind it.
   */
  private async refused(limiter: RateLimiterAbstract, points: number, res: RateLimiterRes): Promise<number> {
    await limiter.reward(KEY, points).catch(() => {})
    return Math.max(1, res.msBeforeNext)
  }
}

/** Requests and input tokens per minute together: one upstream request spends one of the first and its tokens of the second. */
export class RequestBudget {
  private readonly rpm: SharedBudget | undefined
  private readonly tpm: SharedBudget | undefined
  private readonly tpmPoints: number | undefined

  constructor(limits: { rpm?: number | undefined; tpm?: number | undefined }, name: string, redis: SharedRedis | undefined) {
    this.rpm = limits.rpm === undefined ? undefined : new SharedBudget(limits.rpm, `${name}rpm`, redis)
    this.tpm = limits.tpm === undefined ? undefined : new SharedBudget(limits.tpm, `${name}tpm`, redis)
    this.tpmPoints = limits.tpm
  }

  get limited(): boolean {
    return this.rpm !== undefined || this.tpm !== undefined
  }

  /** 0 when the request may go now (its points are spent), else how long until it might (ms). */
  async take(tokens: number): Promise<number> {
    const rpmWait = (await this.rpm?.take(1)) ?? 0
    if (rpmWait > 0) return rpmWait
    // A turn larger than the whole budget spends all of it rather than waiting forever.
    const tpmWait = (await this.tpm?.take(Math.max(1, Math.min(tokens, this.tpmPoints ?? tokens)))) ?? 0
    if (tpmWait > 0) await this.rpm?.giveBack(1)
    return tpmWait
  }

  /** The tighter of the two budgets' remaining fractions; 1 without a budget. */
  async headroom(): Promise<number> {
    const [r, t] = await Promise.all([this.rpm?.headroom() ?? 1, this.tpm?.headroom() ?? 1])
    return Math.min(r, t)
  }
}
