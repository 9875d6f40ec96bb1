// CPU% and RSS of named processes, sampled with pidusage every ~250 ms. CPU is per process with
// all of its threads (the gateway's workers included): 100% = one core, 200% = both cores here.
import pidusage from 'pidusage'

export interface ProcessUsage {
  /** Mean CPU% over the window, from the processes' own CPU-time counters. */
  cpuMean: number
  /** Highest CPU% of one sampling interval. */
  cpuPeak: number
  /** CPU milliseconds spent in the window. */
  cpuMs: number
  rssPeakMb: number
  rssLastMb: number
  samples: number
}

/** One sample: seconds since start, CPU% over the interval before it, RSS MB. */
export type Point = [t: number, cpu: number, rssMb: number]

interface Track {
  first?: pidusage.Status
  last?: pidusage.Status
  cpuPeak: number
  rssPeak: number
  samples: number
  points: Point[]
}

export class Sampler {
  private readonly tracks = new Map<string, Track>()
  private timer: NodeJS.Timeout | undefined
  private pending: Promise<void> = Promise.resolve()

  constructor(
    private readonly pids: Record<string, number>,
    private readonly intervalMs = 250
  ) {
    for (const name of Object.keys(pids)) this.tracks.set(name, { cpuPeak: 0, rssPeak: 0, samples: 0, points: [] })
  }

  async start(): Promise<void> {
    await this.sample(true)
    this.timer = setInterval(() => {
      this.pending = this.sample(false)
    }, this.intervalMs)
  }

  async stop(): Promise<Record<string, ProcessUsage>> {
    clearInterval(this.timer)
    await this.pending
    await this.sample(false)
    const out: Record<string, ProcessUsage> = {}
    for (const [name, t] of this.tracks) {
      if (!t.first || !t.last) continue
      const wall = t.last.timestamp - t.first.timestamp
      const cpuMs = t.last.ctime - t.first.ctime
      out[name] = {
        cpuMean: wall > 0 ? (100 * cpuMs) / wall : 0,
        cpuPeak: t.cpuPeak,
        cpuMs,
        rssPeakMb: t.rssPeak / 2 ** 20,
        rssLastMb: t.last.memory / 2 ** 20,
        samples: t.samples
      }
    }
    pidusage.clear()
    return out
  }

  /** Every sample of one process so far (for a timeline). */
  points(name: string): Point[] {
    return this.tracks.get(name)?.points ?? []
  }

  private async sample(first: boolean): Promise<void> {
    await Promise.all(
      Object.entries(this.pids).map(async ([name, pid]) => {
        const t = this.tracks.get(name)
        if (!t) return
        let stat: pidusage.Status
        try {
          stat = await pidusage(pid)
        } catch {
          return // the process exited
        }
        if (first) t.first = stat
        else if (t.last && t.first && stat.timestamp - t.last.timestamp >= this.intervalMs * 0.8) {
          // From the CPU-time counter over this interval (pidusage's own `cpu` is noisy over short ones).
          const cpu = (100 * (stat.ctime - t.last.ctime)) / (stat.timestamp - t.last.timestamp)
          t.cpuPeak = Math.max(t.cpuPeak, cpu)
          t.points.push([(stat.timestamp - t.first.timestamp) / 1000, cpu, stat.memory / 2 ** 20])
        }
        t.last = stat
        t.rssPeak = Math.max(t.rssPeak, stat.memory)
        t.samples++
      })
    )
  }
}
