import { randomUUID } from 'node:crypto'
import { GatewayError } from '../errors.js'
import type { Content } from '../protocol.js'
import { conversationFrom, type SessionStore } from './store.js'

interface Session {
  turns: Content[]
  busy: boolean
  expiresAt: number
}

/** Sessions in this process: idle ones expire after `ttlMs`; past `max`, the least recently used go first. */
export class MemorySessionStore implements SessionStore {
  // A Map iterates in insertion order; re-inserting on use keeps it least-recently-used first.
  private readonly sessions = new Map<string, Session>()

  constructor(
    private readonly ttlMs: number,
    private readonly max: number,
    private readonly maxTurns: number,
    /** The clock expiry is read from (tests move it instead of sleeping). */
    private readonly now: () => number = Date.now
  ) {}

  async create(): Promise<string> {
    this.evict()
    const id = randomUUID()
    this.sessions.set(id, { turns: [], busy: true, expiresAt: this.now() + this.ttlMs })
    return id
  }

  async begin(id: string): Promise<Content[]> {
    const session = this.live(id)
    if (!session) throw new GatewayError('session_not_found')
    if (session.busy) throw new GatewayError('session_busy')
    session.busy = true
    this.touch(id, session)
    return conversationFrom(session.turns.slice())
  }

  async commit(id: string, turn: readonly [Content, Content]): Promise<void> {
    const session = this.sessions.get(id)
    if (!session) return
    session.turns.push(...turn)
    if (session.turns.length > this.maxTurns) session.turns.splice(0, session.turns.length - this.maxTurns)
    session.busy = false
    this.touch(id, session)
  }

  async release(id: string): Promise<void> {
    const session = this.sessions.get(id)
    if (session) session.busy = false
  }

  async close(): Promise<void> {
    this.sessions.clear()
  }

  private live(id: string): Session | undefined {
    const session = this.sessions.get(id)
    if (session && session.expiresAt <= this.now() && !session.busy) {
      this.sessions.delete(id)
      return undefined
    }
    return session
  }

  private touch(id: string, session: Session): void {
    session.expiresAt = this.now() + this.ttlMs
    this.sessions.delete(id)
    this.sessions.set(id, session)
  }

  /** Oldest first: drop the expired, then the least recently used while over the cap. */
  private evict(): void {
    const now = this.now()
    for (const [id, session] of this.sessions) {
      // Expiry follows recency, so the first live entry ends the sweep once there is room.
      if (session.expiresAt > now && this.sessions.size < this.max) break
      if (!session.busy) this.sessions.delete(id)
    }
  }
}
