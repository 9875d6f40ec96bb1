// Which deployment serves a turn. Among the deployments of the requested alias that are not cooling
// down and have budget, the one with the most headroom (its tighter budget's remaining fraction);
// weights break ties, by weighted random order, so unbudgeted deployments share the load by weight.
// An alias with nothing to offer hands over to its fallbacks, in order. When nothing has anything,
// the turn waits (up to QUOTA_MAX_WAIT_MS) for the soonest moment a deployment frees up, or is
// refused 429 rate_limited with Retry-After set to that moment.
//
//   admission ─▶ acquire(alias) ──▶ Route{deployment, alternatives} ─▶ the worker calls it
//   worker: 429/5xx/refused before any event, with alternatives ─▶ failed() ─▶ reroute() ─▶ next
//   failed(): a 429 or an unreachable deployment cools it at once; a 5xx counts towards a cool-down
//   (failures.ts: distinct turns, so that one turn's content cannot cool a deployment for everyone)
//
// Budgets (rpm, tpm) are shared by every replica (shared-budget.ts), cool-downs too (cooldowns.ts).
import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../config.js'
import type { Metrics } from '../metrics.js'
import type { WireError } from '../protocol.js'
import { quotaRefusal } from '../quota/quota-gate.js'
import { RequestBudget } from '../quota/shared-budget.js'
import type { SharedRedis } from '../shared/redis.js'
import { Cooldowns } from './cooldowns.js'
import type { Deployment } from './deployments.js'
import { FailureWindow, turnFingerprint } from './failures.js'

export interface Route {
  deployment: Deployment
  /** Another deployment could serve the alias (its own or a fallback's): a failure before the first event moves the turn. */
  alternatives: boolean
}

interface Candidate {
  deployment: Deployment
  budget: RequestBudget
}

type Pick = { route: Route } | { soonestMs: number }

/** What a failure says about its deployment, beyond its code. */
export interface FailureEvidence {
  /** The turn's upstream request: turns that fail alike on one deployment are told apart by it. */
  request: unknown
  /** The provider never answered (refused, reset or timed out connection). */
  unreachable: boolean
}

export class Router {
  private readonly chains = new Map<string, Candidate[][]>()
  private readonly cooldowns: Cooldowns
  private readonly failures = new FailureWindow()

  constructor(
    private readonly config: Config,
    redis: SharedRedis | undefined,
    private readonly metrics: Metrics
  ) {
    this.cooldowns = new Cooldowns(redis)
    const { deployments, fallbacks, aliases } = config.upstreams
    const candidates = new Map(
      deployments.map((d) => [d.id, { deployment: d, budget: new RequestBudget({ rpm: d.rpm, tpm: d.tpm }, `dep:${d.id}:`, redis) }])
    )
    const ofAlias = (alias: string) => deployments.filter((d) => d.alias === alias).flatMap((d) => candidates.get(d.id) ?? [])
    for (const alias of aliases) this.chains.set(alias, [alias, ...(fallbacks[alias] ?? [])].map(ofAlias))
  }

  /** The deployment for a turn of `alias`, its budget spent; waits for one up to QUOTA_MAX_WAIT_MS, then throws rate_limited. */
  async acquire(alias: string, tokens: number): Promise<Route> {
    const deadline = Date.now() + this.config.QUOTA_MAX_WAIT_MS
    for (;;) {
      const pick = await this.pick(alias, tokens, [])
      if ('route' in pick) return pick.route
      if (Date.now() + pick.soonestMs > deadline) throw quotaRefusal(pick.soonestMs)
      await sleep(pick.soonestMs)
    }
  }

  /**
   * A deployment failed a turn. A 429 cools it for its delay (or UPSTREAM_COOLDOWN_MS), an unreachable
   * deployment for UPSTREAM_COOLDOWN_MS, at once; any other failure only once FAILURES_TO_COOL distinct
   * turns failed there (failures.ts). Without evidence, a failure counts as a turn of its own.
   */
  failed(deployment: Deployment, error: WireError, evidence?: FailureEvidence): void {
    if (error.code === 'upstream_rate_limited') {
      this.metrics.deploymentRateLimited(deployment.id)
      this.cool(deployment, error.retryAfterMs)
      return
    }
    if (evidence?.unreachable) {
      this.cool(deployment, undefined)
      return
    }
    const turn = evidence ? turnFingerprint(evidence.request) : randomUUID()
    if (this.failures.failed(deployment.id, turn)) this.cool(deployment, undefined)
  }

  /** The deployment served a turn: earlier failures there no longer count towards a cool-down. */
  succeeded(deployment: Deployment): void {
    this.failures.succeeded(deployment.id)
  }

  /** A 429's delay, from a retry or the end of a turn; no delay: UPSTREAM_COOLDOWN_MS. */
  cool(deployment: Deployment, ms: number | undefined): void {
    const length = ms ?? this.config.UPSTREAM_COOLDOWN_MS
    if (length <= 0) return
    this.metrics.deploymentCooled(deployment.id)
    this.cooldowns.cool(deployment.id, length)
  }

  /** Another deployment for the turn now, none of those it tried; undefined when none is free. */
  async reroute(alias: string, tokens: number, tried: readonly string[]): Promise<Route | undefined> {
    const pick = await this.pick(alias, tokens, tried)
    return 'route' in pick ? pick.route : undefined
  }

  private async pick(alias: string, tokens: number, tried: readonly string[]): Promise<Pick> {
    const chain = this.chains.get(alias) ?? []
    const alternatives = chain.flat().length > 1
    const cooling = await this.cooldowns.read()
    const now = Date.now()
    let soonestMs = Number.POSITIVE_INFINITY
    for (const candidates of chain) {
      const open: Candidate[] = []
      for (const c of candidates) {
        if (tried.includes(c.deployment.id)) continue
        const until = cooling.get(c.deployment.id) ?? 0
        if (until > now) soonestMs = Math.min(soonestMs, until - now)
        else open.push(c)
      }
      for (const c of await this.ranked(open)) {
        const waitMs = await c.budget.take(tokens)
        if (waitMs === 0) {
          this.metrics.deploymentPicked(c.deployment.id)
          return { route: { deployment: c.deployment, alternatives } }
        }
        soonestMs = Math.min(soonestMs, waitMs)
      }
    }
    return { soonestMs: Math.max(1, Number.isFinite(soonestMs) ? soonestMs : this.config.UPSTREAM_COOLDOWN_MS) }
  }

  /** Most headroom first; equal headroom in weighted random order (Efraimidis–Spirakis keys). */
  private async ranked(open: Candidate[]): Promise<Candidate[]> {
    if (open.length <= 1) return open
    const scored = await Promise.all(
      open.map(async (c) => {
        const headroom = await c.budget.headroom()
        this.metrics.deploymentHeadroom(c.deployment.id, headroom)
        return { c, headroom, key: Math.random() ** (1 / c.deployment.weight) }
      })
    )
    return scored.sort((a, b) => b.headroom - a.headroom || b.key - a.key).map((s) => s.c)
  }
}
