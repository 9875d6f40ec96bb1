// Sessions in Redis, so a conversation continues on any replica. The turn lock is a lease
// (SET NX PX) with a token only its holder knows, so a replica that died mid-turn cannot hold a
// session forever and one replica can never release another's lock. While Redis cannot answer,
// opening a session is store_unavailable (503) at once; closing one is kept and sent on recovery.
import { randomUUID } from 'node:crypto'
import { GatewayError, RETRY_AFTER_S } from '../errors.js'
import type { Content } from '../protocol.js'
import { oldestKey } from '../shared/maps.js'
import type { SharedRedis } from '../shared/redis.js'
import { conversationFrom, type SessionStore } from './store.js'

// One hash tag per session, so that each script's keys share a slot on a Redis Cluster.
const turnsKey = (id: string) => `gw:sess:{${id}}`
const lockKey = (id: string) => `gw:sess:{${id}}:lock`

// Append a completed turn, keep the last N turns, refresh the TTL, release the lock: all or nothing.
const COMMIT = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2], ARGV[3])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[4]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('DEL', KEYS[2])
return 1`
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`
// A new session is an empty list, which Redis cannot hold: a placeholder element marks it.
const EMPTY = ''

/** While Redis cannot answer, a turn that needs a session gets this at once, not a hang or a 500. */
const unavailable = () => new GatewayError('store_unavailable', undefined, RETRY_AFTER_S)
/** Commits and releases kept for a Redis that comes back; past this many, the oldest lock is left to its lease. */
const MAX_UNSENT = 10_000

export class RedisSessionStore implements SessionStore {
  /** Lock tokens of the turns this replica holds. */
  private readonly tokens = new Map<string, string>()
  /** Commits and releases that failed while Redis was away, sent again when it answers. */
  private readonly unsent = new Map<string, () => Promise<unknown>>()

  constructor(
    private readonly redis: SharedRedis,
    private readonly ttlMs: number,
    private readonly maxTurns: number,
    private readonly leaseMs: number
  ) {
    redis.onRecovery(() => void this.replay())
  }

  async create(): Promise<string> {
    return this.guard('session.create', async () => {
      const id = randomUUID()
      const token = randomUUID()
      await this.redis.client
        .multi()
        .rpush(turnsKey(id), EMPTY)
        .pexpire(turnsKey(id), this.ttlMs)
        .set(lockKey(id), token, 'PX', this.leaseMs)
        .exec()
      this.tokens.set(id, token)
      return id
    })
  }

  async begin(id: string): Promise<Content[]> {
    return this.guard('session.begin', async () => {
      const token = randomUUID()
      const client = this.redis.client
      const locked = await client.set(lockKey(id), token, 'PX', this.leaseMs, 'NX')
      // Use refreshes the TTL, as in memory: a session never expires in the middle of a turn.
      const [[, turns]] = (await client.multi().lrange(turnsKey(id), 0, -1).pexpire(turnsKey(id), this.ttlMs).exec()) as [
        [Error | null, string[]]
      ]
      if (turns.length === 0) {
        if (locked) await client.eval(RELEASE, 1, lockKey(id), token)
        throw new GatewayError('session_not_found')
      }
      if (!locked) throw new GatewayError('session_busy')
      this.tokens.set(id, token)
      return conversationFrom(turns.filter((t) => t !== EMPTY).map((t) => JSON.parse(t) as Content))
    })
  }

  /** Never rejects: if Redis cannot take it now, it is sent again when Redis answers. */
  async commit(id: string, turn: readonly [Content, Content]): Promise<void> {
    const token = this.take(id)
    if (!token) return
    const [user, model] = turn.map((c) => JSON.stringify(c))
    await this.send('session.commit', id, () =>
      this.redis.client.eval(
        COMMIT,
        2,
        turnsKey(id),
        lockKey(id),
        token,
        user ?? '',
        model ?? '',
        String(this.maxTurns),
        String(this.ttlMs)
      )
    )
  }

  /** Never rejects, as commit. */
  async release(id: string): Promise<void> {
    const token = this.take(id)
    if (token) await this.send('session.release', id, () => this.redis.client.eval(RELEASE, 1, lockKey(id), token))
  }

  async close(): Promise<void> {}

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

  private async send(op: string, id: string, command: () => Promise<unknown>): Promise<void> {
    try {
      if (!this.redis.up) throw new Error('Redis is unavailable')
      await command()
    } catch (err) {
      if (this.redis.up) this.redis.failed(op, err)
      this.unsent.delete(id)
      this.unsent.set(id, command)
      const oldest = this.unsent.size > MAX_UNSENT ? oldestKey(this.unsent) : undefined
      if (oldest !== undefined) this.unsent.delete(oldest)
    }
  }

  /** The scripts check the lock token, so sending one twice, or late, never undoes another replica's turn. */
  private async replay(): Promise<void> {
    const pending = [...this.unsent]
    this.unsent.clear()
    for (const [id, command] of pending) {
      try {
        await command()
      } catch (err) {
        this.redis.failed('session.replay', err)
        this.unsent.set(id, command)
      }
    }
  }

  private take(id: string): string | undefined {
    const token = this.tokens.get(id)
    this.tokens.delete(id)
    return token
  }
}
