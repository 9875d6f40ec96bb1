// The store behind RATE_LIMIT_MAX when replicas share Redis (@fastify/rate-limit's store interface):
// one counter per client and window in Redis, or, while Redis cannot answer, one in this replica
// that allows the client its share (RATE_LIMIT_MAX divided by the replicas alive when Redis last
// answered). Never an error: @fastify/rate-limit would turn a store error into a 500.
import type { SharedRedis } from './shared/redis.js'
import { oldestKey } from './shared/maps.js'

// INCR, and the window's expiry on the first hit: one key, so it runs on any node of a cluster.
const INCR = `
local current = redis.call('INCR', KEYS[1])
if current == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {current, redis.call('PTTL', KEYS[1])}`
/** Clients counted locally at once; past this, the least recent are forgotten. */
const MAX_LOCAL_KEYS = 100_000

type Result = { current: number; ttl: number }
type Callback = (error: Error | null, result?: Result) => void

export function rateLimitStore(redis: SharedRedis, nameSpace: string, windowMs: number) {
  const local = new Map<string, { count: number; resetAt: number }>()

  const localIncr = (key: string, timeWindow: number): Result => {
    const now = Date.now()
    let entry = local.get(key)
    if (!entry || entry.resetAt <= now) entry = { count: 0, resetAt: now + timeWindow }
    entry.count++
    local.delete(key)
    local.set(key, entry)
    const oldest = local.size > MAX_LOCAL_KEYS ? oldestKey(local) : undefined
    if (oldest !== undefined) local.delete(oldest)
    // Counted as if every replica saw as many: the client gets its share of the limit here.
    return { current: entry.count * redis.replicas, ttl: entry.resetAt - now }
  }

  return class SharedRateLimitStore {
    incr(key: string, callback: Callback, timeWindow = windowMs): void {
      if (!redis.up) {
        callback(null, localIncr(key, timeWindow))
        return
      }
      redis.client.eval(INCR, 1, `${nameSpace}{${key}}`, String(timeWindow)).then(
        (result) => {
          const [current, ttl] = result as [number, number]
          callback(null, { current, ttl })
        },
        (err: unknown) => {
          redis.failed('rate-limit', err)
          callback(null, localIncr(key, timeWindow))
        }
      )
    }

    child(): this {
      return this
    }
  }
}
