// npm run bench:modes [-- fast|realistic-512|realistic-2048|gemini-like] [--modes=direct,pool,…] [--threads=N] [--duration=S] [--profile]
//
// The same load seven ways, in one run, each on fresh processes:
//   direct      the load hits the simulator's own Gemini endpoint: the ceiling
//   nginx       nginx proxying the simulator's stream (proxy_buffering off): the kernel's floor
//   bare        bench/bare-relay.ts, a minimal Node relay (node:http, undici, eventsource-parser): Node's floor
//   inline-sdk  POOL_MODE=inline UPSTREAM_READER=sdk: a plain relay calling the SDK on the front thread
//   pool-sdk    the product with the SDK's own stream reader (the reader's before/after)
//   inline      POOL_MODE=inline: the product's chat code on the front thread, no pool
//   pool        the product: Piscina workers (default knobs, tasks per worker raised to admit the load)
// --profile: the gateway runs under `node --cpu-prof` (profiles in bench/results/profiles/) and a
// table of where each of its threads spent its time is added. Profiling slows it: use that run for
// attribution, not for the figures.
import { availableParallelism } from 'node:os'
import { parseArgs } from './lib/args.js'
import { cannon, type CannonFigures } from './lib/cannon.js'
import { runLoad, warmup } from './lib/load.js'
import { failures, figures, type LoadFigures, type Outcomes } from './lib/load-summary.js'
import { runMain } from './lib/main.js'
import { profileTable, summariseProfiles } from './lib/profile.js'
import { RESULTS_DIR } from './lib/results.js'
import { measure, settle, type Measured } from './lib/measure.js'
import { FAILURE_HEADERS, failureCells, pair, Report, RESOURCE_HEADERS, resourceCells } from './lib/report.js'
import { startBare, startNginx } from './lib/references.js'
import { admitAll, withStack, type Service, type SimEnv } from './lib/services.js'
import { chatBody, GEMINI_PATH, SseClient, type Protocol } from './lib/sse-client.js'
import { ratio } from './lib/stats.js'
import { counts, fmt, markdownTable, times } from './lib/table.js'

const MODES = ['direct', 'nginx', 'bare', 'inline-sdk', 'pool-sdk', 'inline', 'pool'] as const
type Mode = (typeof MODES)[number]

interface Scenario {
  name: string
  sim: SimEnv
  /** Chunks per stream (SIM_TOKENS ÷ SIM_TOKENS_PER_CHUNK). */
  chunks: number
  /** autocannon (throughput only) or the SSE client (TTFT too). */
  client: 'autocannon' | 'sse'
  concurrency: number
  durationSec: number
  rampMs: number
}

const CHUNKS = 50
const SCENARIOS: Scenario[] = [
  {
    name: 'fast',
    sim: { SIM_TOKENS: `${CHUNKS}`, SIM_TTFT_MS: '0', SIM_DELAY_MS: '0' },
    chunks: CHUNKS,
    client: 'autocannon',
    concurrency: 64,
    durationSec: 10,
    rampMs: 0
  },
  {
    name: 'realistic-512',
    sim: { SIM_TOKENS: `${CHUNKS}`, SIM_TTFT_MS: '150', SIM_DELAY_MS: '20' },
    chunks: CHUNKS,
    client: 'sse',
    concurrency: 512,
    durationSec: 20,
    rampMs: 2_000
  },
  {
    name: 'realistic-2048',
    sim: { SIM_TOKENS: `${CHUNKS}`, SIM_TTFT_MS: '150', SIM_DELAY_MS: '20' },
    chunks: CHUNKS,
    client: 'sse',
    concurrency: 2_048,
    durationSec: 25,
    rampMs: 3_000
  },
  {
    // Like the real API (../shared/real-gemini): a first chunk after a think, then chunks of a
    // few dozen tokens some 80 ms apart; per-request costs weigh more here, per-chunk ones less.
    name: 'gemini-like',
    sim: { SIM_TOKENS: '480', SIM_TOKENS_PER_CHUNK: '30', SIM_TTFT_MS: '800', SIM_DELAY_MS: '80' },
    chunks: 16,
    client: 'sse',
    concurrency: 512,
    durationSec: 20,
    rampMs: 2_000
  }
]

interface Row {
  mode: Mode
  reqPerSec: number
  chunksPerSec: number
  endP50: number
  endP99: number
  ttftP50?: number
  ttftP99?: number
  done: number
  outcomes: Outcomes
  measured: Measured<CannonFigures | LoadFigures>
}

const prompt = (i: number) => `Benchmark question ${i % 50}: how do tides work?`

/** The modes that are not the gateway: what it is measured against. */
const REFERENCES: Partial<Record<Mode, (simulatorUrl: string) => Promise<Service>>> = { bare: startBare, nginx: startNginx }
/** The modes whose clients speak Gemini's wire (nginx relays it unchanged). */
const GEMINI_WIRE: readonly Mode[] = ['direct', 'nginx']

function gatewayEnv(mode: Mode, scenario: Scenario, threads: number): Record<string, string> | null {
  if (mode === 'direct' || REFERENCES[mode]) return null
  const reader = { UPSTREAM_READER: mode.endsWith('-sdk') ? 'sdk' : 'gateway' }
  if (mode.startsWith('inline')) return { POOL_MODE: 'inline', ...reader }
  return { POOL_MODE: 'pool', ...admitAll(scenario.concurrency, threads), ...reader }
}

async function runMode(scenario: Scenario, mode: Mode, threads: number, profileDir: string | undefined): Promise<Row> {
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []
  return withStack(
    scenario.sim,
    gatewayEnv(mode, scenario, threads),
    async ({ simulator, gateway: product }) => {
      const reference = REFERENCES[mode]
      const subject = reference ? await reference(simulator.url) : product
      const stack = { simulator, gateway: subject }
      const target = subject?.url ?? simulator.url
      const protocol: Protocol = GEMINI_WIRE.includes(mode) ? 'gemini' : 'gateway'
      const client = new SseClient(target, protocol, scenario.concurrency + 32, { timeoutMs: 60_000 })
      try {
        await warmup(client, chatBody(protocol, 'warm-up'))
        await settle((subject ?? simulator).child.pid)
        if (scenario.client === 'autocannon') {
          const m = await measure(stack, () =>
            cannon({
              url: target + (protocol === 'gateway' ? '/api/chat' : GEMINI_PATH),
              connections: scenario.concurrency,
              durationSec: scenario.durationSec,
              body: chatBody(protocol, prompt(0)),
              headers: protocol === 'gemini' ? { 'x-goog-api-key': 'bench' } : {}
            })
          )
          const c = m.value
          // autocannon sees HTTP only; error events inside a 200 come from the gateway's own counters.
          const gw = m.gatewayOutcomes ?? {}
          // client_closed: streams autocannon left open when its time was up.
          const errors = Object.fromEntries(Object.entries(gw).filter(([k]) => k !== 'done' && k !== 'client_closed'))
          const connectionErrors = c.errors - c.timeouts
          const outcomes: Outcomes = {
            started: c.ok + c.non2xx,
            done: c.ok,
            errors,
            refused: c.non2xx ? { non2xx: c.non2xx } : {},
            lost: 0,
            timeouts: c.timeouts,
            failed: connectionErrors > 0 ? { connection: connectionErrors } : {},
            cut: gw.client_closed ?? 0
          }
          return {
            mode,
            reqPerSec: c.reqPerSec,
            chunksPerSec: c.reqPerSec * scenario.chunks,
            endP50: c.latencyP50Ms,
            endP99: c.latencyP99Ms,
            done: c.ok,
            outcomes,
            measured: m
          }
        }
        const m = await measure(stack, async () =>
          figures(
            await runLoad(client, {
              concurrency: scenario.concurrency,
              durationMs: scenario.durationSec * 1_000,
              rampMs: scenario.rampMs,
              drainMs: 10_000,
              next: (i) => ({ body: chatBody(protocol, prompt(i)) })
            })
          )
        )
        const f = m.value
        return {
          mode,
          reqPerSec: f.reqPerSec,
          chunksPerSec: f.chunksPerSec,
          endP50: f.latencyMs.p50,
          endP99: f.latencyMs.p99,
          ttftP50: f.ttftMs.p50,
          ttftP99: f.ttftMs.p99,
          done: f.outcomes.done,
          outcomes: f.outcomes,
          measured: m
        }
      } finally {
        await client.close()
        if (reference) await subject?.stop()
      }
    },
    nodeArgs
  )
}

/** The comparisons the targets are stated in: the floors (bare, nginx), the plain SDK relay, the same code inline, the ceiling, and the reader's gain. */
const RATIOS: Array<[Mode, Mode]> = [
  ['pool', 'bare'],
  ['pool', 'nginx'],
  ['inline', 'bare'],
  ['pool', 'inline-sdk'],
  ['pool', 'inline'],
  ['pool', 'direct'],
  ['pool', 'pool-sdk'],
  ['inline', 'inline-sdk'],
  ['inline', 'direct']
]

function tables(scenario: Scenario, rows: Row[], threads: number): string {
  const row = (mode: Mode) => rows.find((r) => r.mode === mode)
  const direct = row('direct')
  const sim = scenario.sim
  const poolKnobs = admitAll(scenario.concurrency, threads)
  const head =
    `#### ${scenario.name}: ${scenario.chunks} chunks, SIM_TTFT_MS=${sim.SIM_TTFT_MS}, SIM_DELAY_MS=${sim.SIM_DELAY_MS}, ` +
    `${scenario.concurrency} ${scenario.client === 'autocannon' ? 'autocannon connections' : 'concurrent streams (undici SSE client)'}, ${scenario.durationSec} s per mode` +
    `${scenario.rampMs ? ` (ramp ${scenario.rampMs / 1000} s, not measured)` : ''}; pool = ${poolKnobs.POOL_MAX_THREADS} threads × ${poolKnobs.POOL_TASKS_PER_WORKER} tasks, queue ${poolKnobs.POOL_MAX_QUEUE}`
  const added = (r: Row, p: 'ttftP50' | 'ttftP99') => {
    const base = direct?.[p]
    const own = r[p]
    return r.mode === 'direct' || base === undefined || own === undefined ? undefined : own - base
  }
  const perf = markdownTable(
    ['mode', 'req/s', 'chunks/s', 'end of stream p50 / p99 ms', 'TTFT p50 / p99 ms', 'gateway-added TTFT p50 / p99 ms (vs direct)'],
    rows.map((r) => [
      r.mode,
      fmt(r.reqPerSec, 1),
      fmt(r.chunksPerSec),
      pair(r.endP50, r.endP99),
      pair(r.ttftP50, r.ttftP99),
      pair(added(r, 'ttftP50'), added(r, 'ttftP99'))
    ])
  )
  const errs = markdownTable(
    ['mode', 'completed', ...FAILURE_HEADERS, 'gateway outcomes (/metrics)', 'kernel TCP drops'],
    rows.map((r) => [
      r.mode,
      r.done,
      ...failureCells(r.outcomes),
      r.measured.gatewayOutcomes ? counts(r.measured.gatewayOutcomes) : '—',
      counts(r.measured.tcp)
    ])
  )
  const res = markdownTable(
    ['mode', ...RESOURCE_HEADERS],
    rows.map((r) => [r.mode, ...resourceCells(r.measured, r.done)])
  )
  // CPU time of the subject's process (all threads, user + system) over the measured window, per completed stream.
  const cpuPerStream = (r: Row | undefined) => (r && r.done > 0 ? (r.measured.usage.gateway?.cpuMs ?? Number.NaN) / r.done : Number.NaN)
  const ratios = markdownTable(
    ['ratio', 'req/s', 'CPU ms per stream', 'end-of-stream p99', 'TTFT p99'],
    RATIOS.flatMap(([a, b]) => {
      const [x, y] = [row(a), row(b)]
      if (!x || !y) return []
      return [
        [
          `${a} / ${b}`,
          times(ratio(x.reqPerSec, y.reqPerSec)),
          times(cpuPerStream(x) / cpuPerStream(y)),
          times(ratio(x.endP99, y.endP99)),
          times(ratio(x.ttftP99, y.ttftP99))
        ]
      ]
    })
  )
  const note =
    scenario.client === 'autocannon'
      ? `\n\nautocannon: latency is to the end of the response; chunks/s = req/s × ${scenario.chunks}; no TTFT; error events come from the gateway's \`gateway_streams_total\`.`
      : ''
  return `${head}\n\n${perf}\n\n${errs}\n\n${res}\n\n${ratios}${note}`
}

async function main(): Promise<void> {
  const args = parseArgs()
  const threads = args.num('threads', availableParallelism())
  const durationSec = args.num('duration', 0)
  const modes = args.words('modes', [...MODES])
  const unknown = modes.filter((m) => !(MODES as readonly string[]).includes(m))
  if (unknown.length > 0) {
    process.stderr.write(`unknown mode ${unknown.join(', ')}; any of ${MODES.join(', ')}\n`)
    process.exit(2)
  }
  const chosen = args.positional.length ? SCENARIOS.filter((s) => args.positional.includes(s.name)) : SCENARIOS
  if (chosen.length === 0) {
    process.stderr.write(`unknown scenario ${args.positional.join(' ')}; one of ${SCENARIOS.map((s) => s.name).join(', ')}\n`)
    process.exit(2)
  }
  // modes-latest (the table of docs/performance.md) is only ever the full default run: a profiled run is slower,
  // and a run of some scenarios, modes or another duration is not comparable.
  const partial = args.positional.length > 0 || args.has('modes') || durationSec > 0 || args.has('threads')
  const report = new Report(
    args.has('profile') ? 'modes-profile' : partial ? 'modes-partial' : 'modes',
    "bench:modes: direct, inline and pool, each with the SDK's stream reader and the gateway's"
  )
  const data: Record<string, unknown> = {}
  let failed = 0
  for (const base of chosen) {
    const scenario = durationSec > 0 ? { ...base, durationSec } : base
    const rows: Row[] = []
    const profiles: string[] = []
    for (const mode of modes as Mode[]) {
      process.stderr.write(`${scenario.name} / ${mode}…\n`)
      const profileDir =
        args.has('profile') && mode !== 'direct'
          ? `${RESULTS_DIR}profiles/${scenario.name}-${mode}-${new Date().toISOString().replace(/[:.]/g, '-')}`
          : undefined
      const row = await runMode(scenario, mode, threads, profileDir)
      rows.push(row)
      failed += failures(row.outcomes)
      // The gateway writes its profiles when it exits (withStack stopped it).
      if (profileDir)
        profiles.push(
          `CPU profile, ${mode} (\`${profileDir.slice(RESULTS_DIR.length)}\`):\n\n${profileTable(summariseProfiles(profileDir))}`
        )
    }
    report.add([tables(scenario, rows, threads), ...profiles].join('\n\n'))
    data[scenario.name] = {
      scenario,
      rows: rows.map(({ measured, ...r }) => ({
        ...r,
        usage: measured.usage,
        eventLoopP99Ms: measured.eventLoopP99Ms,
        gatewayOutcomes: measured.gatewayOutcomes,
        tcp: measured.tcp,
        wallMs: measured.wallMs,
        figures: measured.value
      }))
    }
  }
  report.save(data)
  if (failed > 0) {
    process.stderr.write(`${failed} stream(s) failed: see the error columns\n`)
    process.exitCode = 1
  }
}

await runMain(main)
