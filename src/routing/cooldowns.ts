// Deployments cooling down, by id: a 429 for its RetryInfo (or Retry-After) delay, a failure that
// moved a turn elsewhere for UPSTREAM_COOLDOWN_MS. Every replica sees the same set: one Redis hash,
// read whole on every routing decision (one round trip, so that no replica calls a deployment inside
// its delay), and written by keeping the later end. While Redis cannot answer, this replica's own.
import type { SharedRedis } from '../shared/redis.js'

/** Hash-tagged, so the one key sits in one slot of a Redis Cluster. */
const KEY = 'gw:{routing}:cooldowns'
const KEEP_LATER =
  "local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') " +
  "if tonumber(ARGV[2]) > v then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end " +
  "if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end"

export class Cooldowns {
  private readonly local = new Map<string, number>()

  constructor(private readonly redis: SharedRedis | undefined) {}

  /** Deployment id → epoch ms its cool-down ends (past ends may be included). */
  async read(): Promise<Map<string, number>> {
    const redis = this.redis
    if (!redis?.up) return this.local
    try {
      const shared = await redis.client.hgetall(KEY)
      for (const [id, until] of Object.entries(shared)) this.keepLater(id, Number(until))
    } catch (err) {
      redis.failed('routing.cooldowns', err)
    }
    return this.local
  }

  cool(id: string, ms: number): void {
    const until = Date.now() + ms
    this.keepLater(id, until)
    const redis = this.redis
    if (redis?.up) redis.background('routing.cool', redis.client.eval(KEEP_LATER, 1, KEY, id, String(until), String(ms)))
  }

  private keepLater(id: string, until: number): void {
    if (until > (this.local.get(id) ?? 0)) this.local.set(id, until)
  }
}
