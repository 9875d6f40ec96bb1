import { randomUUID } from 'node:crypto'
import { GatewayError } from '../errors.js'
import type { Content } from '../protocol.js'
import { conversationFrom, ownerOf, sessionBytesBound, type SessionStore } from './store.js'

interface Session {
  turns: Content[]
  /** Each content's estimated bytes, in step with `turns`. */
  sizes: number[]
  /** The session's estimated bytes: its contents' and its own overhead. */
  bytes: number
  busy: boolean
  expiresAt: number
  /** Set for API-key tenants only (see ownerOf). */
  owner: string | undefined
}

export interface MemoryLimits {
  /** Idle lifetime (SESSION_TTL_MS). */
  ttlMs: number
  /** Sessions kept (SESSION_MAX). */
  max: number
  /** Contents kept per session (SESSION_MAX_TURNS). */
  maxTurns: number
  /** Estimated bytes of every session together (SESSION_MAX_BYTES). */
  maxBytes: number
}

// What V8 holds for a session, estimated from its JSON; measured against heapUsed (docs/operations.md, "Sessions
// and memory"). A string with a character past Latin-1 is stored two bytes a character: counted so.
const SESSION_OVERHEAD = 512
const CONTENT_OVERHEAD = 192
const PART_OVERHEAD = 80

/** A content's estimated heap bytes: never below what its strings take, plus its objects' overhead. */
export function contentBytes(content: Content): number {
  const json = JSON.stringify(content)
  const perChar = Buffer.byteLength(json) === json.length ? 1 : 2
  return json.length * perChar + CONTENT_OVERHEAD + PART_OVERHEAD * content.parts.length
}

/**
 * Sessions in this process: idle ones expire after `ttlMs`; past `max` sessions or `maxBytes`, the
 * least recently used go first (never one in a turn); one session past its share of the bytes
 * (sessionBytesBound) drops its oldest turns.
 */
export class MemorySessionStore implements SessionStore {
  // A Map iterates in insertion order; re-inserting on use keeps it least-recently-used first.
  private readonly sessions = new Map<string, Session>()
  private total = 0
  private readonly sessionMaxBytes: number

  constructor(
    private readonly limits: MemoryLimits,
    /** The clock expiry is read from (tests move it instead of sleeping). */
    private readonly now: () => number = Date.now
  ) {
    this.sessionMaxBytes = sessionBytesBound(limits.maxBytes)
  }

  /** Estimated bytes held by every session together (never above maxBytes but for sessions in a turn). */
  get bytes(): number {
    return this.total
  }

  get size(): number {
    return this.sessions.size
  }

  async create(tenant: string): Promise<string> {
    this.shrink(1)
    const id = randomUUID()
    const session: Session = {
      turns: [],
      sizes: [],
      bytes: SESSION_OVERHEAD,
      busy: true,
      expiresAt: this.now() + this.limits.ttlMs,
      owner: ownerOf(tenant)
    }
    this.sessions.set(id, session)
    this.total += session.bytes
    this.shrink(0, id)
    return id
  }

  async begin(id: string, tenant: string): Promise<Content[]> {
    const session = this.live(id)
    // Another tenant's session is, to that tenant, one that does not exist.
    if (!session || (session.owner !== undefined && session.owner !== tenant)) throw new GatewayError('session_not_found')
    if (session.busy) throw new GatewayError('session_busy')
    session.busy = true
    this.touch(id, session)
    return conversationFrom(session.turns.slice())
  }

  async commit(id: string, turn: readonly [Content, Content]): Promise<void> {
    const session = this.sessions.get(id)
    if (!session) return
    const before = session.bytes
    for (const content of turn) {
      const size = contentBytes(content)
      session.turns.push(content)
      session.sizes.push(size)
      session.bytes += size
    }
    // The oldest go first, past SESSION_MAX_TURNS, then while past the session's bytes; the turn just made stays.
    let drop = Math.max(0, session.turns.length - this.limits.maxTurns)
    let bytes = session.bytes - session.sizes.slice(0, drop).reduce((a, b) => a + b, 0)
    while (bytes > this.sessionMaxBytes && drop < session.turns.length - 2) bytes -= session.sizes[drop++] ?? 0
    if (drop > 0) {
      session.turns.splice(0, drop)
      session.sizes.splice(0, drop)
      session.bytes = bytes
    }
    this.total += session.bytes - before
    session.busy = false
    this.touch(id, session)
    this.shrink(0, id)
  }

  async release(id: string): Promise<void> {
    const session = this.sessions.get(id)
    if (session) session.busy = false
  }

  async close(): Promise<void> {
    this.sessions.clear()
    this.total = 0
  }

  private live(id: string): Session | undefined {
    const session = this.sessions.get(id)
    if (session && session.expiresAt <= this.now() && !session.busy) {
      this.drop(id, session)
      return undefined
    }
    return session
  }

  private touch(id: string, session: Session): void {
    session.expiresAt = this.now() + this.limits.ttlMs
    this.sessions.delete(id)
    this.sessions.set(id, session)
  }

  private drop(id: string, session: Session): void {
    this.sessions.delete(id)
    this.total -= session.bytes
  }

  /**
   * Oldest first: drop the expired, then the least recently used while over the cap (with `room`
   * sessions about to be added) or over the bytes. Never a session in a turn, nor `keep`.
   */
  private shrink(room: number, keep?: string): void {
    const now = this.now()
    for (const [id, session] of this.sessions) {
      const over = this.sessions.size + room > this.limits.max || this.total > this.limits.maxBytes
      // Expiry follows recency, so the first live entry ends the sweep once there is room.
      if (session.expiresAt > now && !over) break
      if (!session.busy && id !== keep) this.drop(id, session)
    }
  }
}
