// Wraps one measured run: CPU/RSS sampling of the gateway, the simulator and this process (the load
// generator), and the gateway's own view from /metrics (event-loop delay p99, stream outcomes).
import { setTimeout as sleep } from 'node:timers/promises'
import pidusage from 'pidusage'
import { tcpCounters } from './netstat.js'
import { diffCounts, eventLoopDelayP99Ms, scrape, streamOutcomes } from './prom.js'
import { Sampler, type Point, type ProcessUsage } from './sampler.js'
import type { Service } from './services.js'

export interface Stack {
  simulator: Service
  gateway: Service | undefined
}

export interface Measured<T> {
  value: T
  wallMs: number
  /** gateway, simulator, load (this process). */
  usage: Record<string, ProcessUsage>
  /** Every ~250 ms sample, per process: [s since start, CPU%, RSS MB]. */
  timeline: Record<string, Point[]>
  /** Front-process event-loop delay p99 during the run (gateway only). */
  eventLoopP99Ms?: number
  /** Kernel TCP counters that moved during the run (accept-queue overflows…). */
  tcp: Record<string, number>
  /** gateway_streams_total increments during the run, by outcome (gateway only). */
  gatewayOutcomes?: Record<string, number>
}

export async function measure<T>(stack: Stack, run: () => Promise<T>): Promise<Measured<T>> {
  const { gateway, simulator } = stack
  // This scrape also resets prom-client's event-loop histogram: the next one covers the run only.
  const before = gateway?.metrics ? streamOutcomes(await scrape(gateway.url)) : undefined
  const pids: Record<string, number> = { simulator: simulator.child.pid, load: process.pid }
  if (gateway) pids.gateway = gateway.child.pid
  const tcpBefore = await tcpCounters()
  const sampler = new Sampler(pids)
  await sampler.start()
  const t0 = performance.now()
  const value = await run()
  const wallMs = performance.now() - t0
  const usage = await sampler.stop()
  const timeline = Object.fromEntries(Object.keys(pids).map((name) => [name, sampler.points(name)]))
  const tcp = diffCounts(tcpBefore, await tcpCounters())
  const out: Measured<T> = { value, wallMs, usage, timeline, tcp }
  if (gateway && before) {
    const after = await scrape(gateway.url)
    const eld = eventLoopDelayP99Ms(after)
    if (eld !== undefined) out.eventLoopP99Ms = eld
    out.gatewayOutcomes = diffCounts(before, streamOutcomes(after))
  }
  return out
}

/**
 * Waits until `pid` uses less than `belowPct` CPU over one 500 ms interval (a fresh pool's workers
 * are still loading the SDK, a finished run's streams are still closing), at most `maxMs`.
 */
export async function settle(pid: number, maxMs = 15_000, belowPct = 15): Promise<void> {
  const deadline = Date.now() + maxMs
  let last = await pidusage(pid)
  while (Date.now() < deadline) {
    await sleep(500)
    const now = await pidusage(pid)
    const pct = (100 * (now.ctime - last.ctime)) / Math.max(1, now.timestamp - last.timestamp)
    last = now
    if (pct < belowPct) return
  }
}
