// Server-side conversations. One turn at a time per session: `begin` takes the session's turn
// lock, and exactly one of `commit` (append the turn) or `release` (a failed turn appends nothing)
// gives it back. The memory store implements it here; a shared store can implement it for replicas.
//
// A session belongs to the tenant that made it when that tenant is an API key (`key:…`): any other
// tenant gets what an unknown id gets (404 session_not_found) and never touches its lock. Without
// API keys the tenant is an address, which changes (mobile networks, proxies), so anyone with the id
// may continue, as the id itself is the secret.
import type { Content } from '../protocol.js'

export interface SessionStore {
  /** A new, empty session of `tenant` (request.clientKey) whose turn lock is already held by the caller. */
  create(tenant: string): Promise<string>
  /**
   * Takes the turn lock and returns the conversation; throws GatewayError session_not_found (unknown,
   * expired, or another tenant's) or session_busy.
   */
  begin(id: string, tenant: string): Promise<Content[]>
  /** Appends a completed turn (the user's content and the model's, as received) and gives the lock back. */
  commit(id: string, turn: readonly [Content, Content]): Promise<void>
  /** Gives the lock back and appends nothing. */
  release(id: string): Promise<void>
  close(): Promise<void>
}

/** The owner a session is bound to: API-key tenants only (an address is no identity). */
export const ownerOf = (tenant: string): string | undefined => (tenant.startsWith('key:') ? tenant : undefined)

/** The most one session keeps, whatever SESSION_MAX_BYTES: about 2M tokens of text, past any model's context. */
const SESSION_BYTES_CEILING = 8 << 20

/**
 * The bytes one session may hold before its oldest turns are dropped: a quarter of the in-memory
 * budget (so that one conversation cannot push out every other), at most 8 MiB.
 */
export const sessionBytesBound = (maxBytes: number): number => Math.max(1, Math.min(SESSION_BYTES_CEILING, Math.floor(maxBytes / 4)))

/**
 * What is left of a conversation once its oldest contents were dropped (SESSION_MAX_TURNS, or the
 * per-session byte bound) must still start where a conversation can: with a user message that has
 * text, not with the model, nor with results of calls no longer there.
 */
export function conversationFrom(contents: Content[]): Content[] {
  const start = contents.findIndex((c) => c.role === 'user' && c.parts.some((p) => typeof p.text === 'string'))
  return start <= 0 ? (start < 0 ? [] : contents) : contents.slice(start)
}
