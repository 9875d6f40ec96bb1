// Sessions in Redis, so a conversation continues on any replica. The turn lock is a lease
// (SET NX PX) with a token only its holder knows, so a replica that died mid-turn cannot hold a
// session forever and one replica can never release another's lock.
import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { GatewayError } from '../errors.js'
import type { Content } from '../protocol.js'
import { conversationFrom, type SessionStore } from './store.js'

const turnsKey = (id: string) => `gw:sess:${id}`
const lockKey = (id: string) => `gw:sess:${id}:lock`

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

/** One stored content; sessions written before tools existed hold `{role, text}`. */
function contentOf(stored: string): Content {
  const value = JSON.parse(stored) as Content | { role: Content['role']; text: string }
  return 'parts' in value ? value : { role: value.role, parts: [{ text: value.text }] }
}

export class RedisSessionStore implements SessionStore {
  /** Lock tokens of the turns this replica holds. */
  private readonly tokens = new Map<string, string>()

  constructor(
    private readonly redis: Redis,
    private readonly ttlMs: number,
    private readonly maxTurns: number,
    private readonly leaseMs: number
  ) {}

  async create(): Promise<string> {
    const id = randomUUID()
    const token = randomUUID()
    await this.redis.multi().rpush(turnsKey(id), EMPTY).pexpire(turnsKey(id), this.ttlMs).set(lockKey(id), token, 'PX', this.leaseMs).exec()
    this.tokens.set(id, token)
    return id
  }

  async begin(id: string): Promise<Content[]> {
    const token = randomUUID()
    const locked = await this.redis.set(lockKey(id), token, 'PX', this.leaseMs, 'NX')
    // Use refreshes the TTL, as in memory: a session never expires in the middle of a turn.
    const [[, turns]] = (await this.redis.multi().lrange(turnsKey(id), 0, -1).pexpire(turnsKey(id), this.ttlMs).exec()) as [
      [Error | null, string[]]
    ]
    if (turns.length === 0) {
      if (locked) await this.redis.eval(RELEASE, 1, lockKey(id), token)
      throw new GatewayError('session_not_found')
    }
    if (!locked) throw new GatewayError('session_busy')
    this.tokens.set(id, token)
    return conversationFrom(turns.filter((t) => t !== EMPTY).map(contentOf))
  }

  async commit(id: string, turn: readonly [Content, Content]): Promise<void> {
    const token = this.take(id)
    if (!token) return
    await this.redis.eval(
      COMMIT,
      2,
      turnsKey(id),
      lockKey(id),
      token,
      JSON.stringify(turn[0]),
      JSON.stringify(turn[1]),
      String(this.maxTurns),
      String(this.ttlMs)
    )
  }

  async release(id: string): Promise<void> {
    const token = this.take(id)
    if (token) await this.redis.eval(RELEASE, 1, lockKey(id), token)
  }

  async close(): Promise<void> {}

  private take(id: string): string | undefined {
    const token = this.tokens.get(id)
    this.tokens.delete(id)
    return token
  }
}
