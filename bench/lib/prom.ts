// Reads the gateway's /metrics (Prometheus text).
//
// prom-client's event-loop figures come from perf_hooks.monitorEventLoopDelay with a 10 ms
// resolution, and the histogram is RESET on every scrape (prom-client lib/metrics/eventLoopLag.js).
// So: scrape once just before a run (discarding what came before) and once right after: the
// second scrape covers exactly the run. The histogram records the timer interval itself, so an idle
// loop reads ~10.1 ms; the delay is the value minus the 10 ms resolution.
export const ELD_RESOLUTION_MS = 10

export type Samples = Map<string, number>

export function parseProm(text: string): Samples {
  const samples: Samples = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    samples.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return samples
}

export async function scrape(gatewayUrl: string): Promise<Samples> {
  const res = await fetch(`${gatewayUrl}/metrics`, { signal: AbortSignal.timeout(15_000) })
  return parseProm(await res.text())
}

/** Event-loop delay p99 in ms since the previous scrape, less the 10 ms sampling interval. */
export function eventLoopDelayP99Ms(samples: Samples): number | undefined {
  const p99 = samples.get('nodejs_eventloop_lag_p99_seconds')
  return p99 === undefined ? undefined : Math.max(0, p99 * 1000 - ELD_RESOLUTION_MS)
}

/** gateway_streams_total by outcome (done, an error code, client_closed). */
export function streamOutcomes(samples: Samples): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [key, value] of samples) {
    const outcome = /^gateway_streams_total\{outcome="([^"]+)"\}$/.exec(key)?.[1]
    if (outcome) out[outcome] = value
  }
  return out
}

/** after − before, per key, dropping zeros. */
export function diffCounts(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [key, value] of Object.entries(after)) {
    const delta = value - (before[key] ?? 0)
    if (delta !== 0) out[key] = delta
  }
  return out
}
