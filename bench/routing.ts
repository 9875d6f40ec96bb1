// npm run bench:routing [-- --concurrency=64 --duration=15 --rounds=2]
//
// What routing costs a turn: the gateway with one implicit deployment (no UPSTREAMS_FILE) against the
// same gateway routing across four budgeted deployments of one alias (headroom read for each, a
// budget spent, the cool-down set read), without Redis and with it (every routing decision then
// reads the shared cool-downs and budgets there). One simulator serves every deployment; each
// subject is a fresh gateway process; rounds alternate the subjects' order (A/B/A/B). Figures: the
// gateway's CPU time per completed turn and the client's time to first chunk.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from './lib/args.js'
import { freePort } from './lib/children.js'
import { figures, failures } from './lib/load-summary.js'
import { runLoad, warmup } from './lib/load.js'
import { runMain } from './lib/main.js'
import { measure, settle } from './lib/measure.js'
import { Report } from './lib/report.js'
import { admitAll, startGateway, startSimulator, type Service } from './lib/services.js'
import { SseClient } from './lib/sse-client.js'
import { fmt, markdownTable, times } from './lib/table.js'

const SIM = { SIM_TOKENS: '20', SIM_TTFT_MS: '150', SIM_DELAY_MS: '20' }
const DEPLOYMENTS = 4

interface Subject {
  name: string
  routed: boolean
  redis: boolean
}
const SUBJECTS: Subject[] = [
  { name: 'implicit', routed: false, redis: false },
  { name: 'routed', routed: true, redis: false },
  { name: 'implicit + redis', routed: false, redis: true },
  { name: 'routed + redis', routed: true, redis: true }
]

interface Row {
  subject: string
  round: number
  turns: number
  failures: number
  cpuMsPerTurn: number
  ttftP50: number
  ttftP99: number
  reqPerSec: number
}

async function redisServer(): Promise<{ url: string; proc: ChildProcess }> {
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'inherit']
  })
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('Ready to accept connections')) resolve()
    })
    proc.once('error', () => reject(new Error('bench:routing needs redis-server (npm test installs it; or apt-get install redis-server)')))
    proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)))
  })
  return { url: `redis://127.0.0.1:${port}`, proc }
}

function upstreamsFile(simulatorUrl: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'bench-routing-')), 'upstreams.json')
  const deployments = Array.from({ length: DEPLOYMENTS }, (_, i) => ({
    id: `studio-${i}`,
    provider: 'gemini',
    alias: 'chat',
    model: 'gemini-2.5-flash',
    apiKey: `bench-${i}`,
    baseUrl: simulatorUrl,
    // Budgets far above the load: each decision reads and spends them, none refuses.
    rpm: 10_000_000,
    tpm: 1_000_000_000
  }))
  writeFileSync(path, JSON.stringify({ deployments }))
  return path
}

await runMain(async () => {
  const args = parseArgs()
  const concurrency = args.num('concurrency', 64)
  const durationMs = args.num('duration', 15) * 1000
  const rounds = args.num('rounds', 2)
  const threads = 2
  const report = new Report('routing', 'bench:routing: what choosing a deployment costs a turn')
  const simulator: Service = await startSimulator(SIM)
  const redis = await redisServer()
  const file = upstreamsFile(simulator.url)
  const rows: Row[] = []
  try {
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? SUBJECTS : [...SUBJECTS].reverse()
      for (const subject of order) {
        const gateway = await startGateway(simulator.url, {
          ...admitAll(concurrency, threads),
          ...(subject.routed ? { UPSTREAMS_FILE: file } : {}),
          ...(subject.redis ? { REDIS_URL: redis.url } : {})
        })
        const client = new SseClient(gateway.url, 'gateway', concurrency + 32, { timeoutMs: 30_000 })
        const body = JSON.stringify({ message: 'Route me: tell me about tides', history: [], ...(subject.routed ? { model: 'chat' } : {}) })
        try {
          await warmup(client, body)
          await settle(gateway.child.pid)
          const m = await measure({ simulator, gateway }, () =>
            runLoad(client, { concurrency, durationMs, rampMs: 2_000, drainMs: 10_000, next: () => ({ body }) })
          )
          const f = figures(m.value)
          const done = m.value.records.filter((r) => r.terminal === 'done').length
          rows.push({
            subject: subject.name,
            round,
            turns: done,
            failures: failures(f.outcomes),
            cpuMsPerTurn: (m.usage.gateway?.cpuMs ?? 0) / Math.max(1, done),
            ttftP50: f.ttftMs.p50,
            ttftP99: f.ttftMs.p99,
            reqPerSec: f.reqPerSec
          })
        } finally {
          await client.close()
          await gateway.stop()
        }
      }
    }
  } finally {
    redis.proc.kill('SIGKILL')
    await once(redis.proc, 'exit')
    await simulator.stop()
  }

  const mean = (name: string, key: keyof Row) => {
    const of = rows.filter((r) => r.subject === name).map((r) => r[key] as number)
    return of.reduce((a, b) => a + b, 0) / Math.max(1, of.length)
  }
  report.add(
    `${concurrency} concurrent turns for ${durationMs / 1000} s per subject and round, ${rounds} rounds alternating the order; ` +
      `simulator ${SIM.SIM_TOKENS} chunks, TTFT ${SIM.SIM_TTFT_MS} ms, ${SIM.SIM_DELAY_MS} ms apart; ${threads} workers; routed: ${DEPLOYMENTS} budgeted deployments of one alias\n\n` +
      markdownTable(
        ['subject', 'round', 'turns', 'failures', 'req/s', 'gateway CPU ms/turn', 'client TTFT p50 / p99 ms'],
        rows.map((r) => [
          r.subject,
          r.round,
          r.turns,
          r.failures,
          fmt(r.reqPerSec, 1),
          fmt(r.cpuMsPerTurn, 2),
          `${fmt(r.ttftP50)} / ${fmt(r.ttftP99)}`
        ])
      )
  )
  const versus = (routed: string, base: string) => [
    `${routed} vs ${base}`,
    times(mean(routed, 'cpuMsPerTurn') / mean(base, 'cpuMsPerTurn')),
    fmt(mean(routed, 'cpuMsPerTurn') - mean(base, 'cpuMsPerTurn'), 2),
    fmt(mean(routed, 'ttftP50') - mean(base, 'ttftP50'), 1),
    fmt(mean(routed, 'ttftP99') - mean(base, 'ttftP99'), 1)
  ]
  report.add(
    'Means over the rounds\n\n' +
      markdownTable(
        ['comparison', 'CPU per turn', 'added CPU ms/turn', 'added TTFT p50 ms', 'added TTFT p99 ms'],
        [versus('routed', 'implicit'), versus('routed + redis', 'implicit + redis'), versus('implicit + redis', 'implicit')]
      )
  )
  report.save({ sim: SIM, concurrency, durationMs, rounds, threads, deployments: DEPLOYMENTS, rows })
})
