// The replica's Redis: one client for commands and one for pub/sub (a single server, or a Redis
// Cluster the client discovers from one node), whether Redis is answering now, the replicas alive,
// and the deliberate fire-and-forget calls. Redis is a shared cache here, never a single point of
// failure: a command waits at most REDIS_COMMAND_TIMEOUT_MS, nothing queues while it is down, and
// everything that needs it asks `up` first and has a local answer when it is not.
//
//   every BEAT_MS:  ZADD gw:{replicas} <now+ALIVE_MS> <replicaId> · ZREMRANGEBYSCORE … · ZCOUNT …
//                   ok → up (and listeners run once on recovery) · failure → down
import { randomUUID } from 'node:crypto'
import { Cluster, Redis, type RedisOptions } from 'ioredis'

export type RedisClient = Redis | Cluster

export interface SharedRedis {
  /** Commands. */
  client: RedisClient
  /** Pub/sub only (a subscribed connection can run no other command). */
  subscriber: RedisClient
  replicaId: string
  /** Whether Redis answered the last time it was asked (beat or command). */
  readonly up: boolean
  /** Replicas alive at the last successful beat, this one included: the divisor of local shares. */
  readonly replicas: number
  /** Runs `listener` each time Redis comes back after an outage. */
  onRecovery(listener: () => void): void
  isAlive(replicaId: string): Promise<boolean>
  /** A command failed: Redis counts as down until the next beat succeeds. */
  failed(op: string, err: unknown): void
  /** A call nobody waits for: its failure is logged once per kind of failure and counted, never thrown. */
  background(op: string, call: Promise<unknown>): void
  close(): Promise<void>
}

export interface RedisEvents {
  /** up: 1 or 0, for gateway_redis_up. */
  state(up: boolean): void
  /** A failed command, by operation (a closed set of names from the code). */
  error(op: string, err: unknown, first: boolean): void
}

const ALIVE_MS = 3_000
const BEAT_MS = 500
const REPLICAS_KEY = 'gw:{replicas}'

/**
 * Connects both clients, waiting at most one command timeout: a replica whose Redis is down at
 * start-up starts anyway, degraded, and joins once Redis answers.
 */
export async function connectRedis(
  options: { url: string; mode: 'standalone' | 'cluster'; commandTimeoutMs: number },
  events: RedisEvents
): Promise<SharedRedis> {
  const base: RedisOptions = {
    lazyConnect: true,
    // A command waits for Redis at most this long, and never in a queue while it is away.
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: options.commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // Reconnect soon after an outage: recovery within a second, with no restart.
    retryStrategy: (times) => Math.min(100 * times, 500)
  }
  const make = (): RedisClient => {
    if (options.mode === 'standalone') return new Redis(options.url, base)
    const { hostname, port } = new URL(options.url)
    return new Cluster([{ host: hostname, port: Number(port || 6379) }], {
      lazyConnect: true,
      enableOfflineQueue: false,
      redisOptions: base,
      clusterRetryStrategy: (times) => Math.min(100 * times, 500),
      slotsRefreshTimeout: options.commandTimeoutMs
    })
  }
  const client = make()
  const subscriber = make()
  const replicaId = randomUUID()
  let up = false
  let replicas = 1
  const recovery = new Set<() => void>()
  const seen = new Set<string>()

  const setUp = (value: boolean) => {
    if (value === up) return
    up = value
    events.state(value)
    if (value) {
      seen.clear()
      for (const listener of recovery) listener()
    }
  }
  const failed = (op: string, err: unknown) => {
    const kind = `${op}:${(err as { message?: string } | null)?.message?.replace(/\d+/g, 'N') ?? String(err)}`
    events.error(op, err, !seen.has(kind))
    seen.add(kind)
    setUp(false)
  }

  const beat = async () => {
    const now = Date.now()
    try {
      const results = await client
        .pipeline()
        .zadd(REPLICAS_KEY, now + ALIVE_MS, replicaId)
        .zremrangebyscore(REPLICAS_KEY, '-inf', now)
        .zcount(REPLICAS_KEY, now, '+inf')
        .pexpire(REPLICAS_KEY, ALIVE_MS * 10)
        .exec()
      const error = results?.find(([err]) => err)?.[0]
      if (error) throw error
      replicas = Math.max(1, Number(results?.[2]?.[1] ?? 1))
      setUp(true)
    } catch (err) {
      failed('liveness', err)
    }
  }

  // Both connected, or the wait is over: start either way.
  await Promise.race([
    Promise.allSettled([client.connect(), subscriber.connect()]),
    new Promise((resolve) => setTimeout(resolve, options.commandTimeoutMs).unref())
  ])
  // Errors surface through commands; without a listener ioredis would print each reconnect failure.
  client.on('error', () => {})
  subscriber.on('error', () => {})
  await beat()
  const timer = setInterval(() => void beat(), BEAT_MS).unref()

  return {
    client,
    subscriber,
    replicaId,
    get up() {
      return up
    },
    get replicas() {
      return replicas
    },
    onRecovery: (listener) => recovery.add(listener),
    isAlive: async (id) => id === replicaId || Number(await client.zscore(REPLICAS_KEY, id)) > Date.now(),
    failed,
    background(op, call) {
      call.then(undefined, (err: unknown) => failed(op, err))
    },
    async close() {
      clearInterval(timer)
      if (up) await client.zrem(REPLICAS_KEY, replicaId).catch(() => {})
      client.disconnect()
      subscriber.disconnect()
    }
  }
}
