// npm run bench:redis-faults [-- --clients=24 --phase=6]
//
// What a Redis fault costs the users of two replicas sharing one redis-server (SESSION_STORE=redis,
// UPSTREAM_RPM and RATE_LIMIT_MAX set as in production): a closed loop of clients, half sending
// stateless turns (history) and half continuing their own sessions, through five phases of
// `--phase` seconds: healthy, hung (SIGSTOP), healthy again (SIGCONT), down (SIGKILL), restarted
// empty. Per phase and kind of turn: throughput, outcomes and latency; and the time from Redis
// answering again to the first session turn served on each replica.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createParser } from 'eventsource-parser'
import { parseArgs } from './lib/args.js'
import { freePort } from './lib/children.js'
import { runMain } from './lib/main.js'
import { Report } from './lib/report.js'
import { startGateway, startSimulator, type Service } from './lib/services.js'
import { summarize } from './lib/stats.js'
import { counts, fmt, markdownTable } from './lib/table.js'

const PHASES = ['healthy', 'hung (SIGSTOP)', 'healthy (after SIGCONT)', 'down (SIGKILL)', 'restarted empty'] as const
type Phase = (typeof PHASES)[number]
type Kind = 'stateless' | 'session'

interface Turn {
  phase: Phase
  kind: Kind
  at: number
  ms: number
  outcome: string
  replica: number
}

async function redisServer(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'inherit']
  })
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('Ready to accept connections')) resolve()
    })
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)))
  })
  return child
}

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGCONT')
  child.kill('SIGKILL')
  await once(child, 'exit')
}

/** One turn: `done`, an error event's code, or the refusal as `<status> <code>`. */
async function turn(url: string, body: object): Promise<{ outcome: string; sessionId?: string }> {
  try {
    const res = await fetch(`${url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body)
    })
    if (res.status !== 200) {
      const json = (await res.json().catch(() => ({}))) as { error?: { code?: string } }
      return { outcome: `${res.status} ${json.error?.code ?? '?'}` }
    }
    let outcome = 'lost'
    let sessionId: string | undefined
    const parser = createParser({
      onEvent: (e) => {
        const data = JSON.parse(e.data) as { sessionId?: string | null; code?: string }
        if (e.event === 'meta') sessionId = data.sessionId ?? undefined
        else if (e.event === 'done') outcome = 'done'
        else if (e.event === 'error') outcome = data.code ?? 'error'
      }
    })
    const decoder = new TextDecoder()
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }))
    return { outcome, ...(sessionId ? { sessionId } : {}) }
  } catch (err) {
    return { outcome: `failed ${(err as Error).message}` }
  }
}

await runMain(async () => {
  const args = parseArgs()
  const clients = args.num('clients', 24)
  const phaseMs = args.num('phase', 6) * 1000
  const report = new Report(
    'redis-faults',
    'bench:redis-faults: two replicas sharing one redis-server, hung, killed and restarted under load'
  )
  const port = await freePort()
  let redis = await redisServer(port)
  const sim = await startSimulator({ SIM_TOKENS: '20', SIM_TTFT_MS: '100', SIM_DELAY_MS: '20' })
  const env = {
    REDIS_URL: `redis://127.0.0.1:${port}`,
    SESSION_STORE: 'redis',
    UPSTREAM_RPM: '1000000',
    RATE_LIMIT_MAX: '1000000',
    POOL_MIN_THREADS: '1',
    POOL_MAX_THREADS: '1'
  }
  const replicas: Service[] = [await startGateway(sim.url, env), await startGateway(sim.url, env)]
  try {
    const turns: Turn[] = []
    let phase: Phase = 'healthy'
    let running = true
    const start = performance.now()
    const recovery: Array<{ event: string; at: number; firstServed: Array<number | undefined> }> = []

    const client = async (i: number) => {
      const kind: Kind = i % 2 === 0 ? 'stateless' : 'session'
      const replica = Math.floor(i / 2) % replicas.length
      const url = replicas[replica]?.url ?? ''
      let sessionId: string | undefined
      while (running) {
        const at = performance.now()
        const body =
          kind === 'stateless'
            ? { message: `stateless ${i}`, history: [] }
            : { message: `session ${i}`, ...(sessionId ? { sessionId } : {}) }
        const result = await turn(url, body)
        const ms = performance.now() - at
        turns.push({ phase, kind, at: at - start, ms, outcome: result.outcome, replica })
        if (kind === 'session') {
          // A session lost with a restarted Redis starts again; one refused for an outage is kept.
          if (result.sessionId) sessionId = result.sessionId
          else if (result.outcome.includes('session_not_found')) sessionId = undefined
          const pending = recovery.at(-1)
          if (pending && result.outcome === 'done' && at >= pending.at) pending.firstServed[replica] ??= at - pending.at
        }
        if (result.outcome !== 'done') await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    const loops = Array.from({ length: clients }, (_, i) => client(i))
    const next = async (name: Phase, act: () => Promise<void> | void) => {
      await new Promise((resolve) => setTimeout(resolve, phaseMs))
      await act()
      phase = name
    }
    await next('hung (SIGSTOP)', () => {
      redis.kill('SIGSTOP')
    })
    await next('healthy (after SIGCONT)', () => {
      redis.kill('SIGCONT')
      recovery.push({ event: 'SIGCONT', at: performance.now(), firstServed: replicas.map(() => undefined) })
    })
    await next('down (SIGKILL)', () => killed(redis))
    await next('restarted empty', async () => {
      redis = await redisServer(port)
      recovery.push({ event: 'restart (empty)', at: performance.now(), firstServed: replicas.map(() => undefined) })
    })
    await new Promise((resolve) => setTimeout(resolve, phaseMs))
    running = false
    await Promise.all(loops)

    const rows = PHASES.flatMap((p) =>
      (['stateless', 'session'] as const).map((kind) => {
        const mine = turns.filter((t) => t.phase === p && t.kind === kind)
        const served = mine.filter((t) => t.outcome === 'done')
        const refused = mine.filter((t) => t.outcome !== 'done')
        const latency = summarize(served.map((t) => t.ms))
        const refusedLatency = summarize(refused.map((t) => t.ms))
        return [
          p,
          kind,
          mine.length,
          fmt(served.length / (phaseMs / 1000), 1),
          counts(
            Object.fromEntries([...new Set(refused.map((t) => t.outcome))].map((o) => [o, refused.filter((t) => t.outcome === o).length]))
          ),
          `${fmt(latency.p50)} / ${fmt(latency.p99)}`,
          refused.length ? `${fmt(refusedLatency.p50)} / ${fmt(refusedLatency.p99)}` : '—'
        ]
      })
    )
    report.add(
      `${clients} clients in a closed loop (half stateless, half continuing a session), ${phaseMs / 1000} s per phase; ` +
        `simulator 20 chunks 20 ms apart after 100 ms; REDIS_COMMAND_TIMEOUT_MS default (1000)\n\n` +
        markdownTable(
          ['phase', 'kind', 'turns', 'served/s', 'refused (by outcome)', 'served latency p50 / p99 ms', 'refusal latency p50 / p99 ms'],
          rows
        )
    )
    report.add(
      markdownTable(
        ['Redis answers again after', 'the first session turn served started, replica 1 / 2 (ms after)'],
        recovery.map((r) => [r.event, r.firstServed.map((ms) => (ms === undefined ? 'none' : fmt(ms))).join(' / ')])
      )
    )
    const bad = turns.filter((t) => /^5\d\d (?!store_unavailable)|internal_error|lost|failed|^429/.test(t.outcome))
    report.add(`Answers outside the documented degraded ones (500, lost streams, false 429s, failures): ${bad.length}`)
    report.save({ clients, phaseMs, turns: turns.length, recovery, bad: bad.slice(0, 50) })
    if (bad.length > 0) process.exitCode = 1
  } finally {
    for (const r of replicas) await r.stop()
    await sim.stop()
    await killed(redis)
  }
})
