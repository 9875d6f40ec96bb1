// Server-side conversations. One turn at a time per session: `begin` takes the session's turn
// lock, and exactly one of `commit` (append the turn) or `release` (a failed turn appends nothing)
// gives it back. The memory store implements it here; a shared store can implement it for replicas.
import type { Turn } from '../protocol.js'

export interface SessionStore {
  /** A new, empty session whose turn lock is already held by the caller. */
  create(): Promise<string>
  /** Takes the turn lock and returns the conversation; throws GatewayError session_not_found or session_busy. */
  begin(id: string): Promise<Turn[]>
  /** Appends a completed turn (the user message and the whole reply) and gives the lock back. */
  commit(id: string, user: string, reply: string): Promise<void>
  /** Gives the lock back and appends nothing. */
  release(id: string): Promise<void>
  close(): Promise<void>
}
