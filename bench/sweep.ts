// npm run bench:sweep [-- --threads=1,2,4,8 --tasks=1,8,64,256 --concurrency=512 --duration=9]
//
// POOL_MAX_THREADS × POOL_TASKS_PER_WORKER on the realistic scenario (50 chunks 20 ms apart), a
// fresh simulator and gateway per cell. Cells with fewer slots than streams queue (POOL_MAX_QUEUE is
// set high so nothing is refused); whatever is still queued at the end of a cell is cut, not failed.
// Writes the table and bench/results/sweep-latest.svg (req/s per tasks-per-worker, one bar per thread count).
import { mkdirSync, writeFileSync } from 'node:fs'
import { parseArgs } from './lib/args.js'
import { runLoad, warmup } from './lib/load.js'
import { failures, figures, type LoadFigures } from './lib/load-summary.js'
import { runMain } from './lib/main.js'
import { measure, settle, type Measured } from './lib/measure.js'
import { pair, Report } from './lib/report.js'
import { RESULTS_DIR } from './lib/results.js'
import { withStack } from './lib/services.js'
import { chatBody, SseClient } from './lib/sse-client.js'
import { barChartSvg } from './lib/svg.js'
import { counts, fmt, markdownTable } from './lib/table.js'

const SIM = { SIM_TOKENS: '50', SIM_TTFT_MS: '150', SIM_DELAY_MS: '20' }

interface Cell {
  threads: number
  tasks: number
  m: Measured<LoadFigures>
}

async function runCell(threads: number, tasks: number, concurrency: number, durationSec: number): Promise<Cell> {
  const env = {
    POOL_MODE: 'pool',
    POOL_MIN_THREADS: String(threads),
    POOL_MAX_THREADS: String(threads),
    POOL_TASKS_PER_WORKER: String(tasks),
    POOL_MAX_QUEUE: String(concurrency * 4)
  }
  return withStack(SIM, env, async (stack) => {
    const { gateway } = stack
    const client = new SseClient(gateway.url, 'gateway', concurrency + 32, { timeoutMs: 60_000 })
    try {
      await warmup(client, chatBody('gateway', 'warm-up'), Math.min(64, 2 * threads * tasks))
      await settle(gateway.child.pid)
      const m = await measure(stack, async () =>
        figures(
          await runLoad(client, {
            concurrency,
            durationMs: durationSec * 1_000,
            rampMs: 1_000,
            drainMs: 2_000,
            next: (i) => ({ body: chatBody('gateway', `Sweep question ${i % 50}: how do tides work?`) })
          })
        )
      )
      return { threads, tasks, m }
    } finally {
      await client.close()
    }
  })
}

await runMain(async () => {
  const args = parseArgs()
  const threadsList = args.list('threads', [1, 2, 4, 8])
  const tasksList = args.list('tasks', [1, 8, 64, 256])
  const concurrency = args.num('concurrency', 512)
  const durationSec = args.num('duration', 9)
  const report = new Report('sweep', 'bench:sweep: POOL_MAX_THREADS × POOL_TASKS_PER_WORKER')
  const cells: Cell[] = []
  for (const threads of threadsList) {
    for (const tasks of tasksList) {
      process.stderr.write(`threads ${threads} × tasks ${tasks}…\n`)
      cells.push(await runCell(threads, tasks, concurrency, durationSec))
    }
  }

  const table = markdownTable(
    [
      'threads',
      'tasks/worker',
      'slots',
      'req/s',
      'chunks/s',
      'TTFT p50 / p99 ms',
      'end p99 ms',
      'completed',
      'failures',
      'cut (queued at end)',
      'gateway CPU%',
      'gateway RSS peak MB',
      'front ELD p99 ms'
    ],
    cells.map(({ threads, tasks, m }) => {
      const f = m.value
      const o = f.outcomes
      const failed = failures(o)
      return [
        threads,
        tasks,
        threads * tasks,
        fmt(f.reqPerSec, 1),
        fmt(f.chunksPerSec),
        pair(f.ttftMs.p50, f.ttftMs.p99),
        fmt(f.latencyMs.p99),
        o.done,
        failed ? `${failed} (${counts({ ...o.errors, ...o.refused, ...o.failed, lost: o.lost, timeout: o.timeouts })})` : 0,
        o.cut,
        fmt(m.usage.gateway?.cpuMean),
        fmt(m.usage.gateway?.rssPeakMb),
        fmt(m.eventLoopP99Ms, 1)
      ]
    })
  )
  report.add(
    `${concurrency} concurrent streams (closed loop), 50 chunks 20 ms apart after a 150 ms TTFT, ${durationSec} s per cell (1 s ramp not measured); ` +
      `POOL_MIN_THREADS = POOL_MAX_THREADS, POOL_MAX_QUEUE = ${concurrency * 4}. CPU% of one core (200% = both).\n\n${table}`
  )

  const svg = barChartSvg({
    title: `req/s at ${concurrency} concurrent streams (50 chunks, 20 ms apart), 2 cores`,
    xLabel: 'POOL_TASKS_PER_WORKER',
    yLabel: 'completed streams per second',
    categories: tasksList.map(String),
    series: threadsList.map((threads) => ({
      name: `${threads} thread${threads === 1 ? '' : 's'}`,
      values: tasksList.map((tasks) => cells.find((c) => c.threads === threads && c.tasks === tasks)?.m.value.reqPerSec ?? NaN)
    }))
  })
  mkdirSync(RESULTS_DIR, { recursive: true })
  writeFileSync(`${RESULTS_DIR}sweep-latest.svg`, svg)
  report.add('Chart: `bench/results/sweep-latest.svg`')
  report.save({
    concurrency,
    durationSec,
    sim: SIM,
    cells: cells.map(({ threads, tasks, m }) => ({
      threads,
      tasks,
      figures: m.value,
      usage: m.usage,
      eventLoopP99Ms: m.eventLoopP99Ms,
      gatewayOutcomes: m.gatewayOutcomes
    }))
  })
})
