// npm run bench:long [-- 1000] [--streams=N --ramp=S --threads=N]
//
// N streams (default 8,000) held open at once through the pool gateway, each 60 s long: a chunk
// every 500 ms (120 tokens, TTFT 50 ms). Slots open over --ramp seconds and each sends one stream.
// Held with zero errors? Gateway RSS peak (target < 1 GiB) and CPU. A per-stream client deadline and
// a cut 30 s after the last stream should have ended bound the run.
import { availableParallelism } from 'node:os'
import { parseArgs } from './lib/args.js'
import { runLoad } from './lib/load.js'
import { failures, outcomesOf } from './lib/load-summary.js'
import { messageCounts, parseLines } from './lib/logs.js'
import { runMain } from './lib/main.js'
import { measure, settle } from './lib/measure.js'
import { failureCells, FAILURE_HEADERS, pair, Report } from './lib/report.js'
import { openFilesLimit } from './lib/results.js'
import { admitAll, withStack } from './lib/services.js'
import { chatBody, SseClient } from './lib/sse-client.js'
import { summarize } from './lib/stats.js'
import { counts, fmt, markdownTable } from './lib/table.js'

const TOKENS = 120
const DELAY_MS = 500
const TTFT_MS = 50
const SIM = { SIM_TOKENS: String(TOKENS), SIM_TTFT_MS: String(TTFT_MS), SIM_DELAY_MS: String(DELAY_MS) }
const STREAM_MS = TTFT_MS + (TOKENS - 1) * DELAY_MS
const GiB = 1024

await runMain(async () => {
  const args = parseArgs()
  const first = Number(args.positional[0])
  const streams = args.num('streams', Number.isFinite(first) && first > 0 ? first : 8_000)
  const rampSec = args.num('ramp', 8)
  const threads = args.num('threads', availableParallelism())
  const gatewayEnv = { POOL_MODE: 'pool', ...admitAll(streams, threads) }
  const report = new Report('long-lived', `bench:long: ${streams} concurrent 60 s streams through the pool gateway`)

  await withStack(SIM, gatewayEnv, async (stack) => {
    const { gateway } = stack
    await settle(gateway.child.pid)
    const client = new SseClient(gateway.url, 'gateway', streams + 16, { timeoutMs: STREAM_MS + 60_000 })
    const progress = setInterval(() => {
      process.stderr.write(`  open ${client.open}\n`)
    }, 10_000)
    const logFrom = gateway.child.lines.length
    try {
      const m = await measure(stack, () =>
        runLoad(client, {
          concurrency: streams,
          repeat: false,
          durationMs: rampSec * 1_000 + 1_000,
          rampMs: rampSec * 1_000,
          measureFromMs: 0,
          drainMs: STREAM_MS + 30_000,
          next: (i) => ({ body: chatBody('gateway', `Long-lived question ${i % 100}: tell me a long story about tides`) })
        })
      )
      const records = m.value.records
      const o = outcomesOf(records)
      const done = records.filter((r) => r.terminal === 'done')
      const duration = summarize(done.map((r) => r.durationMs / 1000))
      const ttft = summarize(records.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs])))
      const chunks = summarize(done.map((r) => r.chunks))
      const gw = m.usage.gateway
      // Streams open at once (request sent, response not ended), checked every second.
      let peakOpen = 0
      for (let t = m.value.startAt; t <= m.value.endAt; t += 1_000) {
        peakOpen = Math.max(peakOpen, records.filter((r) => r.startAt <= t && t < r.startAt + r.durationMs).length)
      }
      const failed = failures(o)
      const held = failed === 0 && o.cut === 0 && o.done === streams
      const logs = messageCounts(parseLines(gateway.child.lines.slice(logFrom)))

      report.add(
        `${streams} streams, ${TOKENS} chunks ${DELAY_MS} ms apart after a ${TTFT_MS} ms TTFT (${fmt(STREAM_MS / 1000, 1)} s each), opened over ${rampSec} s; ` +
          `gateway: ${gatewayEnv.POOL_MAX_THREADS} threads × ${gatewayEnv.POOL_TASKS_PER_WORKER} tasks, queue ${gatewayEnv.POOL_MAX_QUEUE}; open files ${openFilesLimit()}\n\n` +
          markdownTable(
            ['figure', 'value'],
            [
              ['held with zero errors', held ? 'yes' : 'NO'],
              ['streams started / completed (done)', `${o.started} / ${o.done}`],
              ['most streams open at once', peakOpen],
              ...FAILURE_HEADERS.map((h, i) => [h, failureCells(o)[i]]),
              ['chunks per completed stream p50 / min', `${fmt(chunks.p50)} / ${fmt(Math.min(...done.map((r) => r.chunks)))}`],
              ['TTFT p50 / p99 ms', pair(ttft.p50, ttft.p99)],
              ['stream duration p50 / p99 / max s', `${fmt(duration.p50, 2)} / ${fmt(duration.p99, 2)} / ${fmt(duration.max, 2)}`],
              ['gateway RSS peak MB (target < 1 GiB)', `${fmt(gw?.rssPeakMb)} (${gw && gw.rssPeakMb < GiB ? 'under' : 'OVER'} 1 GiB)`],
              ['gateway CPU% mean / peak (200% = 2 cores)', gw ? pair(gw.cpuMean, gw.cpuPeak) : '—'],
              ['simulator CPU% mean / RSS peak MB', m.usage.simulator ? pair(m.usage.simulator.cpuMean, m.usage.simulator.rssPeakMb) : '—'],
              ['load generator CPU% mean / RSS peak MB', m.usage.load ? pair(m.usage.load.cpuMean, m.usage.load.rssPeakMb) : '—'],
              ['front event-loop delay p99 ms', fmt(m.eventLoopP99Ms, 1)],
              ['gateway outcomes (/metrics)', counts(m.gatewayOutcomes ?? {})],
              ['kernel TCP drops/aborts during the run', counts(m.tcp)],
              ['gateway log lines (warn and above)', counts(logs)]
            ]
          )
      )
      // Gateway RSS and CPU over time, every ~10 s.
      const points = m.timeline.gateway ?? []
      const every = points.filter((_, i) => i % 40 === 39)
      report.add(
        markdownTable(
          ['t (s)', 'gateway CPU%', 'gateway RSS MB'],
          every.map(([t, cpu, rss]) => [fmt(t), fmt(cpu), fmt(rss)])
        )
      )
      report.save({
        streams,
        rampSec,
        sim: SIM,
        gatewayEnv,
        outcomes: o,
        ttft,
        duration,
        chunks,
        usage: m.usage,
        eventLoopP99Ms: m.eventLoopP99Ms,
        gatewayOutcomes: m.gatewayOutcomes,
        tcp: m.tcp,
        logs,
        timeline: m.timeline
      })
      if (!held) process.exitCode = 1
    } finally {
      clearInterval(progress)
      await client.close()
    }
  })
})
