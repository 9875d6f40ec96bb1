// npm run bench:smoke [-- --duration=S --connections=N]
//
// autocannon against POST /api/chat on a pool gateway with its own simulator process: proves the
// path holds load. Exits 1 on any non-2xx, connection error, timeout or stream that did not end `done`.
import { parseArgs } from './lib/args.js'
import { cannon } from './lib/cannon.js'
import { runMain } from './lib/main.js'
import { measure, settle } from './lib/measure.js'
import { pair, Report, RESOURCE_HEADERS, resourceCells } from './lib/report.js'
import { withStack } from './lib/services.js'
import { chatBody } from './lib/sse-client.js'
import { counts, fmt, markdownTable } from './lib/table.js'

const SIM = { SIM_TOKENS: '48', SIM_TTFT_MS: '50', SIM_DELAY_MS: '5' }

await runMain(async () => {
  const args = parseArgs()
  const durationSec = args.num('duration', 10)
  const connections = args.num('connections', 32)
  const report = new Report('smoke', 'bench:smoke: autocannon → gateway (pool) → simulator')
  await withStack(SIM, { POOL_MODE: 'pool' }, async (stack) => {
    const { gateway } = stack
    await settle(gateway.child.pid)
    const m = await measure(stack, () =>
      cannon({ url: `${gateway.url}/api/chat`, connections, durationSec, body: chatBody('gateway', 'Smoke test: tell me about tides') })
    )
    const c = m.value
    const outcomes = m.gatewayOutcomes ?? {}
    // Streams autocannon left open when its time was up end as client_closed: not failures.
    const bad = Object.entries(outcomes)
      .filter(([k]) => k !== 'done' && k !== 'client_closed')
      .reduce((n, [, v]) => n + v, 0)
    report.add(
      `${connections} connections, ${durationSec} s; simulator ${SIM.SIM_TOKENS} chunks, TTFT ${SIM.SIM_TTFT_MS} ms, ${SIM.SIM_DELAY_MS} ms apart; gateway defaults (POOL_MODE=pool)\n\n` +
        markdownTable(
          [
            'req/s',
            'latency p50 / p99 ms (to end of stream)',
            'max ms',
            '2xx',
            'non-2xx',
            'errors',
            'timeouts',
            'gateway outcomes (/metrics)'
          ],
          [
            [
              fmt(c.reqPerSec, 1),
              pair(c.latencyP50Ms, c.latencyP99Ms),
              fmt(c.latencyMaxMs),
              c.ok,
              c.non2xx,
              c.errors,
              c.timeouts,
              counts(outcomes)
            ]
          ]
        ) +
        '\n\n' +
        markdownTable(RESOURCE_HEADERS, [resourceCells(m, c.ok)])
    )
    report.save({
      sim: SIM,
      connections,
      durationSec,
      cannon: c,
      usage: m.usage,
      eventLoopP99Ms: m.eventLoopP99Ms,
      gatewayOutcomes: outcomes
    })
    if (c.ok === 0 || c.non2xx > 0 || c.errors > 0 || bad > 0) {
      process.stderr.write('smoke: FAILED (see the table)\n')
      process.exitCode = 1
    }
  })
})
