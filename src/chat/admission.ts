// Admission, one sequence for every route, cheapest refusal first: draining, the pool's queue, the
// client's concurrent streams, the conversation (a session's turn lock), then upstream quota and a
// deployment with budget (both may wait). Whatever was taken is given back when a later step refuses.
import { GatewayError, RETRY_AFTER_S } from '../errors.js'
import type { Content, UpstreamRequest } from '../protocol.js'
import { estimateTokens } from '../quota/quota-gate.js'
import { contentTexts } from './conversation.js'
import type { Route } from '../routing/router.js'
import type { TurnDeps } from './turn.js'

export interface PreparedTurn {
  request: UpstreamRequest
  /** The user's content of this turn (what a session appends). */
  user: Content
  sessionId: string | null
}

export interface AdmittedTurn extends PreparedTurn {
  /** Gives back the client's stream slot: the turn calls it when it ends. */
  giveBack: () => void
  /** The deployment chosen for it, its budget spent. */
  route: Route
  /** The input tokens budgeted (a reroute spends them again on the next deployment). */
  tokens: number
}

/**
 * `prepare` builds the turn once the cheap checks passed. It calls `locked` as soon as it holds a
 * session's turn lock, so that a refusal after that (a tool result that answers nothing, quota)
 * releases the lock.
 */
export async function admitTurn(
  deps: Pick<TurnDeps, 'lifecycle' | 'dispatcher' | 'caps' | 'quota' | 'router' | 'sessions'>,
  clientKey: string,
  prepare: (locked: (sessionId: string) => void) => Promise<PreparedTurn>
): Promise<AdmittedTurn> {
  deps.lifecycle.admit()
  if (deps.dispatcher.full) throw new GatewayError('overloaded', undefined, RETRY_AFTER_S)
  const giveBack = deps.caps.take(clientKey)
  let lock: string | undefined
  try {
    const turn = await prepare((sessionId) => {
      lock = sessionId
    })
    const { request } = turn
    const tokens = estimateTokens([...contentTexts(request.contents), request.system ?? '', JSON.stringify(request.tools ?? [])])
    await deps.quota.acquire(tokens)
    const route = await deps.router.acquire(request.model, tokens)
    return { ...turn, giveBack, route, tokens }
  } catch (err) {
    giveBack()
    if (lock !== undefined) await deps.sessions.release(lock)
    throw err
  }
}
