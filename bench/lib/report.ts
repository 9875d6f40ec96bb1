// A scenario's printed report: Markdown sections printed as they are produced, then saved with the
// raw data (results.ts). Also the resource and failure cells several scenarios share.
import type { Measured } from './measure.js'
import type { Outcomes } from './load-summary.js'
import { machineLine, writeResults } from './results.js'
import { counts, fmt, type Cell } from './table.js'

export class Report {
  private readonly parts: string[] = []

  constructor(
    private readonly scenario: string,
    title: string
  ) {
    this.add(`### ${title}\n\n${machineLine()}`)
  }

  add(markdown: string): void {
    process.stdout.write(`${markdown}\n\n`)
    this.parts.push(markdown)
  }

  save(data: unknown): void {
    const file = writeResults(this.scenario, data, this.parts.join('\n\n'))
    process.stdout.write(`results: ${file} (and ${this.scenario}-latest.json / .md)\n`)
  }
}

/** "p50 / p99" in one cell. */
export const pair = (a: number | undefined, b: number | undefined, digits = 0): string =>
  a === undefined && b === undefined ? '—' : `${fmt(a, digits)} / ${fmt(b, digits)}`

export const RESOURCE_HEADERS = [
  'gateway CPU% mean / peak',
  'gateway RSS peak MB',
  'gateway CPU ms/stream',
  'simulator CPU% / RSS MB',
  'load-gen CPU% / RSS MB',
  'front ELD p99 ms'
]

/** CPU is % of one core (200% = both cores); `streams` divides the gateway's CPU time. */
export function resourceCells(m: Measured<unknown>, streams: number): Cell[] {
  const gw = m.usage.gateway
  const sim = m.usage.simulator
  const load = m.usage.load
  return [
    gw ? pair(gw.cpuMean, gw.cpuPeak) : '—',
    gw ? fmt(gw.rssPeakMb) : '—',
    gw && streams > 0 ? fmt(gw.cpuMs / streams, 2) : '—',
    sim ? pair(sim.cpuMean, sim.rssPeakMb) : '—',
    load ? pair(load.cpuMean, load.rssPeakMb) : '—',
    m.eventLoopP99Ms === undefined ? '—' : fmt(m.eventLoopP99Ms, 1)
  ]
}

export const FAILURE_HEADERS = [
  'non-200',
  'error events',
  'lost (no terminal)',
  'client timeouts',
  'connection errors',
  'cut at end of run'
]

export function failureCells(o: Outcomes): Cell[] {
  return [counts(o.refused), counts(o.errors), o.lost, o.timeouts, counts(o.failed), o.cut]
}
