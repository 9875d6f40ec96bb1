// Sessions in Redis, so a conversation continues on any replica. The turn lock is a lease
// (SET NX PX) with a token only its holder knows, renewed while the turn runs: a replica that died
// mid-turn holds a session for one lease at most, and one replica can never release another's lock.
// While Redis cannot answer, opening a session is store_unavailable (503) at once; closing one is
// kept and sent on recovery.
//
// A lock write whose outcome is unknown (it timed out, or its connection broke) may still run when
// Redis answers, with a token nobody keeps: it is undone with that token at once, on the same
// connection, so Redis runs the undo right after it; if the undo cannot be sent either, on recovery.
// The scripts check the token, so an undo that finds nothing, or comes twice, changes nothing.
//
//   gw:sess:{id}         list: a placeholder, then the contents, oldest first
//   gw:sess:{id}:lock    the turn lock: the holder's token, with the lease as its TTL
//   gw:sess:{id}:meta    hash: owner (API-key tenants only), bytes (the contents', for the bound)
//   gw:{sessions}:recent sorted set: session ids by last use, for SESSION_MAX
//
// A session's keys share a hash tag, so each script runs in one slot of a Redis Cluster; the index
// has its own slot and is updated by separate commands (a session it misses still expires by TTL).
import { randomUUID } from 'node:crypto'
import { GatewayError, RETRY_AFTER_S } from '../errors.js'
import type { Content } from '../protocol.js'
import { oldestKey } from '../shared/maps.js'
import type { SharedRedis } from '../shared/redis.js'
import { conversationFrom, ownerOf, type SessionStore } from './store.js'

const turnsKey = (id: string) => `gw:sess:{${id}}`
const lockKey = (id: string) => `gw:sess:{${id}}:lock`
const metaKey = (id: string) => `gw:sess:{${id}}:meta`
const keysOf = (id: string) => [turnsKey(id), lockKey(id), metaKey(id)] as const
const INDEX = 'gw:{sessions}:recent'

/** The turn lock's lease: renewed every third of it while the turn runs, so only a dead replica's lock expires. */
export const SESSION_LEASE_MS = 30_000

// KEYS: turns, lock, meta. ARGV: token, lease, ttl, tenant. Another tenant's session is one that does
// not exist, and its lock is not touched: nil (none), 0 (busy), or the contents.
const BEGIN = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local owner = redis.call('HGET', KEYS[3], 'owner')
if owner and owner ~= ARGV[4] then return false end
if not redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return redis.call('LRANGE', KEYS[1], 0, -1)`
// Append a completed turn, drop the oldest past N contents or past the session's bytes (the turn just
// made stays), refresh the TTL, release the lock: all or nothing. ARGV: token, user, model, N, ttl, bytes.
const COMMIT = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local n = redis.call('RPUSH', KEYS[1], ARGV[2], ARGV[3])
local bytes = redis.call('HINCRBY', KEYS[3], 'bytes', #ARGV[2] + #ARGV[3])
local keep, most = tonumber(ARGV[4]), tonumber(ARGV[6])
while n > 2 and (n > keep or bytes > most) do
  bytes = bytes - #redis.call('LPOP', KEYS[1])
  n = n - 1
end
redis.call('HSET', KEYS[3], 'bytes', math.max(bytes, 0))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[5])
redis.call('DEL', KEYS[2])
return 1`
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`
// A session whose creation timed out was never given to anyone: it goes, if the lock is still ours.
const UNCREATE = `if redis.call('GET', KEYS[2]) == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) end return 0`
// The holder extends its lease, and the session's TTL, so that neither lapses in a long turn. ARGV: token, lease, ttl.
const RENEW = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1`
// KEYS: the index. ARGV: id, now, ttl. Its entries older than the TTL are sessions that expired.
const TOUCH = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[2]) - tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])`
// The same, then the least recently used past SESSION_MAX (ARGV[4]), to be deleted one by one.
const ADD_AND_TRIM = `${TOUCH}
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over <= 0 then return {} end
return redis.call('ZRANGE', KEYS[1], 0, over - 1)`
// Deletes a session unless a turn holds it (it stays in the index, to be tried again).
const EVICT = `if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end redis.call('DEL', KEYS[1], KEYS[3]) return 1`
// A new session is an empty list, which Redis cannot hold: a placeholder element marks it.
const EMPTY = ''

/** While Redis cannot answer, a turn that needs a session gets this at once, not a hang or a 500. */
const unavailable = () => new GatewayError('store_unavailable', undefined, RETRY_AFTER_S)
/** Lock writes kept for a Redis that comes back; past this many, the oldest lock is left to its lease. */
const MAX_UNSENT = 10_000

export interface RedisLimits {
  /** Idle lifetime (SESSION_TTL_MS). */
  ttlMs: number
  /** Contents kept per session (SESSION_MAX_TURNS). */
  maxTurns: number
  /** Sessions kept (SESSION_MAX): past it, the least recently used are deleted, never one in a turn. */
  max: number
  /** Bytes of contents one session keeps (sessionBytesBound(SESSION_MAX_BYTES)), oldest dropped. */
  sessionMaxBytes: number
  /** The turn lock's lease (SESSION_LEASE_MS), renewed every third of it while the turn runs. */
  leaseMs: number
  /** No renewal past this long after begin: a turn never ended (a bug) holds its session one lease more. */
  maxHoldMs: number
}

interface Held {
  token: string
  /** Renewed until then. */
  until: number
}

export class RedisSessionStore implements SessionStore {
  /** The turn locks this replica holds. */
  private readonly held = new Map<string, Held>()
  /** Lock writes (commit, release, undo) Redis did not confirm, by token, sent again when it answers. */
  private readonly unsent = new Map<string, { op: string; command: () => Promise<unknown> }>()
  /** Lock writes sent and not yet answered. */
  private inFlight = 0
  private readonly renewal: NodeJS.Timeout

  constructor(
    private readonly redis: SharedRedis,
    private readonly limits: RedisLimits
  ) {
    redis.onRecovery(() => void this.replay())
    this.renewal = setInterval(() => this.renew(), Math.max(50, Math.floor(limits.leaseMs / 3))).unref()
  }

  /** Lock writes not yet confirmed by Redis (sent and unanswered, or kept for its recovery). */
  get pending(): number {
    return this.inFlight + this.unsent.size
  }

  async create(tenant: string): Promise<string> {
    return this.guard('session.create', async () => {
      const id = randomUUID()
      const token = randomUUID()
      const [turns, lock, meta] = keysOf(id)
      const owner = ownerOf(tenant)
      try {
        const results = await this.redis.client
          .multi()
          .rpush(turns, EMPTY)
          .pexpire(turns, this.limits.ttlMs)
          .set(lock, token, 'PX', this.limits.leaseMs)
          .hset(meta, owner ? { bytes: 0, owner } : { bytes: 0 })
          .pexpire(meta, this.limits.ttlMs)
          .exec()
        const failed = results?.find(([err]) => err)?.[0]
        if (!results || failed) throw failed ?? new Error('transaction discarded')
      } catch (err) {
        this.undo(token, 'session.uncreate', () => this.redis.client.eval(UNCREATE, 3, turns, lock, meta, token))
        throw err
      }
      this.hold(id, token)
      this.trim(id)
      return id
    })
  }

  async begin(id: string, tenant: string): Promise<Content[]> {
    return this.guard('session.begin', async () => {
      const token = randomUUID()
      const { ttlMs, leaseMs } = this.limits
      let reply: unknown
      try {
        reply = await this.redis.client.eval(BEGIN, 3, ...keysOf(id), token, String(leaseMs), String(ttlMs), tenant)
      } catch (err) {
        this.undo(token, 'session.unlock', () => this.redis.client.eval(RELEASE, 1, lockKey(id), token))
        throw err
      }
      if (reply === null) throw new GatewayError('session_not_found')
      if (!Array.isArray(reply)) throw new GatewayError('session_busy')
      this.hold(id, token)
      this.touch(id)
      return conversationFrom((reply as string[]).filter((t) => t !== EMPTY).map((t) => JSON.parse(t) as Content))
    })
  }

  /** Never rejects: if Redis cannot take it now, it is sent again when Redis answers. */
  async commit(id: string, turn: readonly [Content, Content]): Promise<void> {
    const token = this.take(id)
    if (!token) return
    const [user, model] = turn.map((c) => JSON.stringify(c))
    const { maxTurns, ttlMs, sessionMaxBytes } = this.limits
    await this.send(token, 'session.commit', () =>
      this.redis.client.eval(
        COMMIT,
        3,
        ...keysOf(id),
        token,
        user ?? '',
        model ?? '',
        String(maxTurns),
        String(ttlMs),
        String(sessionMaxBytes)
      )
    )
    this.touch(id)
  }

  /** Never rejects, as commit. */
  async release(id: string): Promise<void> {
    const token = this.take(id)
    if (token) await this.send(token, 'session.release', () => this.redis.client.eval(RELEASE, 1, lockKey(id), token))
  }

  async close(): Promise<void> {
    clearInterval(this.renewal)
  }

  private async guard<T>(op: string, run: () => Promise<T>): Promise<T> {
    if (!this.redis.up) throw unavailable()
    try {
      return await run()
    } catch (err) {
      if (err instanceof GatewayError) throw err
      this.redis.failed(op, err)
      throw unavailable()
    }
  }

  private async send(token: string, op: string, command: () => Promise<unknown>): Promise<void> {
    this.inFlight++
    try {
      if (!this.redis.up) throw new Error('Redis is unavailable')
      await command()
    } catch (err) {
      if (this.redis.up) this.redis.failed(op, err)
      this.keep(token, op, command)
    } finally {
      this.inFlight--
    }
  }

  /**
   * Sent at once, whether Redis counts as up or not: on a connection that is still open (a hung
   * Redis), it is queued behind the write it undoes and runs right after it.
   */
  private undo(token: string, op: string, command: () => Promise<unknown>): void {
    this.inFlight++
    command().then(
      () => this.inFlight--,
      (err: unknown) => {
        this.inFlight--
        // A failure seen while Redis counts as up marks it down, so that the recovery replays this.
        if (this.redis.up) this.redis.failed(op, err)
        this.keep(token, op, command)
      }
    )
  }

  private keep(token: string, op: string, command: () => Promise<unknown>): void {
    this.unsent.set(token, { op, command })
    const oldest = this.unsent.size > MAX_UNSENT ? oldestKey(this.unsent) : undefined
    if (oldest !== undefined) this.unsent.delete(oldest)
  }

  /** The scripts check the lock token, so sending one twice, or late, never undoes another replica's turn. */
  private async replay(): Promise<void> {
    const pending = [...this.unsent]
    this.unsent.clear()
    for (const [token, kept] of pending) {
      await this.send(token, 'session.replay', kept.command)
    }
  }

  private hold(id: string, token: string): void {
    this.held.set(id, { token, until: Date.now() + this.limits.maxHoldMs })
  }

  private take(id: string): string | undefined {
    const token = this.held.get(id)?.token
    this.held.delete(id)
    return token
  }

  /** Every third of a lease, each lock held is extended by a lease. A failure waits for the next round. */
  private renew(): void {
    if (!this.redis.up) return
    const now = Date.now()
    const { leaseMs, ttlMs } = this.limits
    for (const [id, held] of this.held) {
      if (held.until < now) continue
      this.redis.background('session.renew', this.redis.client.eval(RENEW, 3, ...keysOf(id), held.token, String(leaseMs), String(ttlMs)))
    }
  }

  /** The session was used now (the index orders sessions for SESSION_MAX). */
  private touch(id: string): void {
    if (!this.redis.up) return
    this.redis.background('session.index', this.redis.client.eval(TOUCH, 1, INDEX, id, String(Date.now()), String(this.limits.ttlMs)))
  }

  /** Indexes a new session, then deletes the least recently used past SESSION_MAX, in the background. */
  private trim(id: string): void {
    const { client } = this.redis
    const run = async () => {
      const victims = (await client.eval(
        ADD_AND_TRIM,
        1,
        INDEX,
        id,
        String(Date.now()),
        String(this.limits.ttlMs),
        String(this.limits.max)
      )) as string[]
      const gone: string[] = []
      for (const victim of victims) if ((await client.eval(EVICT, 3, ...keysOf(victim))) === 1) gone.push(victim)
      if (gone.length > 0) await client.zrem(INDEX, ...gone)
    }
    this.redis.background('session.evict', run())
  }
}
