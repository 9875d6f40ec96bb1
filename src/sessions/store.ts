// Server-side conversations. One turn at a time per session: `begin` takes the session's turn
// lock, and exactly one of `commit` (append the turn) or `release` (a failed turn appends nothing)
// gives it back. The memory store implements it here; a shared store can implement it for replicas.
import type { Content } from '../protocol.js'

export interface SessionStore {
  /** A new, empty session whose turn lock is already held by the caller. */
  create(): Promise<string>
  /** Takes the turn lock and returns the conversation; throws GatewayError session_not_found or session_busy. */
  begin(id: string): Promise<Content[]>
  /** Appends a completed turn (the user's content and the model's, as received) and gives the lock back. */
  commit(id: string, turn: readonly [Content, Content]): Promise<void>
  /** Gives the lock back and appends nothing. */
  release(id: string): Promise<void>
  close(): Promise<void>
}

/**
 * What is left of a conversation once its oldest contents were dropped (SESSION_MAX_TURNS) must
 * still start where a conversation can: with a user message that has text, not with the model, nor
 * with results of calls no longer there.
 */
export function conversationFrom(contents: Content[]): Content[] {
  const start = contents.findIndex((c) => c.role === 'user' && c.parts.some((p) => typeof p.text === 'string'))
  return start <= 0 ? (start < 0 ? [] : contents) : contents.slice(start)
}
