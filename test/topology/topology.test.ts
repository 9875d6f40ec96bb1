// The deployed topology without Docker: three gateway processes (`node dist/src/server.js`) behind a
// real nginx built from deploy/nginx.conf, sharing a real Redis, in front of one simulator in this
// process (so upstream requests can be counted). Sessions, stream resume and the upstream quota hold
// across replicas; a replica SIGKILLed under load takes only its own streams, and those resume
// elsewhere with what was already in Redis, then a clear `stream_lost`.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { startSimulator, type Simulator } from '../../src/simulator/index.js'
import { startChild, type ChildGateway } from '../helpers/child.js'
import { until } from '../helpers/gateway.js'
import { nginxTest, renderNginxConf, startNginx, type TestNginx } from '../helpers/nginx.js'
import { lastIdOf } from '../../src/wire/ids.js'
import { adminClient, startSharedRedis, type RedisMode } from '../helpers/redis.js'
import { postChat, readSse, replyText, resume, terminal, type SseEvent } from '../helpers/sse.js'
import { executable, lacks } from '../helpers/system.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

const MODES = ['standalone', 'cluster'] as const
const LOAD_PROMPT = 'under load [[sim:tokens=40, delay=25]]'

/** A POST that survives its connection being cut: every event seen, and how the body ended. */
interface Outcome {
  events: SseEvent[]
  status: number
  cut: boolean
  error?: string
}
async function stream(base: string, body: unknown, onEvent?: (e: SseEvent) => void): Promise<Outcome> {
  const events: SseEvent[] = []
  let status = 0
  try {
    const res = await fetch(`${base}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(15_000)
    })
    status = res.status
    await readSse(res, (e) => {
      events.push(e)
      onEvent?.(e)
    })
    return { events, status, cut: false }
  } catch (err) {
    return { events, status, cut: true, error: String((err as Error).cause ?? err) }
  }
}
const text = (events: SseEvent[]) =>
  events
    .filter((e) => e.event === 'chunk')
    .map((e) => e.json.text)
    .join('')
const chunkIds = (events: SseEvent[]) => events.filter((e) => e.event === 'chunk').map((e) => Number(e.id))
const terminals = (events: SseEvent[]) => events.filter((e) => e.event === 'done' || e.event === 'error')

/** The id of the last event of a stream that Redis holds (0: none yet). */
async function storedEvents(admin: ReturnType<typeof adminClient>, requestId: string): Promise<number> {
  const [last] = await admin.lrange(`gw:s:{${requestId}}:ev`, -1, -1)
  return last ? lastIdOf(last) : 0
}

async function startReplicas(n: number, env: Record<string, string>): Promise<ChildGateway[]> {
  const started: ChildGateway[] = []
  // One at a time: two cores, and each start loads the SDK into a worker.
  for (let i = 0; i < n; i++) started.push(await startChild(env))
  return started
}
async function killAll(children: ChildGateway[]): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL')
      await Promise.race([c.exited, new Promise((r) => setTimeout(r, 5_000))])
    })
  )
}
type SharedRedis = Awaited<ReturnType<typeof startSharedRedis>>

const baseEnv = (sim: Simulator, redis: SharedRedis): Record<string, string> => ({
  GEMINI_API_KEY: 'test',
  GEMINI_BASE_URL: sim.url,
  ...redis.env,
  SESSION_STORE: 'redis',
  LOG_LEVEL: 'info', // startChild reads the "Server listening" line
  POOL_MIN_THREADS: '1',
  POOL_MAX_THREADS: '1'
})

interface Topology {
  redis: SharedRedis
  sim: Simulator
  replicas: ChildGateway[]
  nginx: TestNginx
}

/** Redis (a server or a cluster), one simulator (so upstream requests can be counted), three replicas and nginx in front. */
async function startTopology(mode: RedisMode, simDelayMs: number, env: Record<string, string>): Promise<Topology> {
  const redis = await startSharedRedis(mode)
  const sim = await startSimulator({ ttftMs: 0, delayMs: simDelayMs })
  const replicas = await startReplicas(3, { ...baseEnv(sim, redis), ...env })
  const nginx = await startNginx(replicas.map((r) => r.url.replace('http://', '')))
  return { redis, sim, replicas, nginx }
}

async function stopTopology(t: Partial<Topology>): Promise<void> {
  await t.nginx?.stop()
  await killAll(t.replicas ?? [])
  await t.sim?.close()
  await t.redis?.stop()
}

describe('deploy files validate', () => {
  test.skipIf(lacks('the compose file check', 'docker-compose'))('docker-compose config -q accepts docker-compose.yml', () => {
    const r = spawnSync(executable('docker-compose'), ['-f', 'docker-compose.yml', 'config', '-q'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 15_000,
      env: { ...process.env, GEMINI_API_KEY: '' }
    })
    expect(r.stderr + r.stdout).toBe('')
    expect(r.status).toBe(0)
    const services = spawnSync(executable('docker-compose'), ['-f', 'docker-compose.yml', 'config', '--services'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 15_000
    })
    expect(services.stdout.trim().split('\n').sort()).toEqual(['gateway', 'nginx', 'redis'])
  })

  test.skipIf(lacks('the nginx config check', 'nginx'))('nginx -t accepts deploy/nginx.conf with the upstream substituted', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gw-nginx-t-'))
    try {
      // Only the upstream (and the paths nginx -t must be able to open on this host) change.
      const conf = join(dir, 'nginx.conf')
      writeFileSync(conf, renderNginxConf(['127.0.0.1:3001', '127.0.0.1:3002', '127.0.0.1:3003'], { dir }))
      const r = nginxTest(conf, dir)
      expect(r.output).toMatch(/test is successful/)
      expect(r.status).toBe(0)
      const rendered = renderNginxConf(['127.0.0.1:3001'])
      expect(rendered).toMatch(/^\s*server 127\.0\.0\.1:3001 max_fails=2 fail_timeout=5s;/m)
      expect(rendered).toMatch(/^\s*listen 8080;/m)
      for (const directive of [
        'least_conn;',
        'proxy_buffering off;',
        'proxy_cache off;',
        'proxy_http_version 1.1;',
        'proxy_read_timeout 3600s;',
        'proxy_next_upstream error timeout;',
        'client_max_body_size 1m;'
      ]) {
        expect(rendered).toContain(directive)
      }
      expect(rendered).not.toMatch(/^\s*proxy_next_upstream\s[^;#]*non_idempotent/m) // POSTs are never retried once sent
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe.skipIf(lacks('the topology suite', 'redis-server', 'redis-cli', 'nginx')).each(MODES)(
  'three replicas behind nginx, sharing Redis (%s)',
  (mode) => {
    let redis: SharedRedis
    let sim: Simulator
    let replicas: ChildGateway[] = []
    let nginx: TestNginx
    let reference: string
    let admin: ReturnType<typeof adminClient>

    beforeAll(async () => {
      ;({ redis, sim, replicas, nginx } = await startTopology(mode, 20, { RESUME_GRACE_MS: '5000' }))
      admin = adminClient(redis.env.REDIS_URL, mode)
      reference = replyText(await postChat(nginx.url, { message: LOAD_PROMPT, history: [] }))
      expect(reference.length).toBeGreaterThan(0)
    }, 120_000)

    afterAll(async () => {
      admin?.disconnect()
      await stopTopology({ redis, sim, replicas, nginx })
    }, 60_000)

    test('a conversation continues across replicas: each turn on another one, the reply as if stateless', async () => {
      const [a, b, c] = replicas as [ChildGateway, ChildGateway, ChildGateway]
      const first = await postChat(a.url, { message: 'first turn [[sim:tokens=6, delay=0]]' })
      expect(terminal(first).map((e) => e.event)).toEqual(['done'])
      const sessionId = first.events[0]!.json.sessionId as string
      const second = await postChat(b.url, { message: 'second turn [[sim:tokens=6, delay=0]]', sessionId })
      expect(terminal(second).map((e) => e.event)).toEqual(['done'])
      const history = [
        { role: 'user', text: 'first turn [[sim:tokens=6, delay=0]]' },
        { role: 'model', text: replyText(first) }
      ]
      const stateless = await postChat(c.url, { message: 'second turn [[sim:tokens=6, delay=0]]', history })
      expect(replyText(second)).toBe(replyText(stateless))
      // And a third turn through nginx (any replica) sees both.
      const third = await postChat(nginx.url, { message: 'third turn [[sim:tokens=6, delay=0]]', sessionId })
      const history3 = [
        ...history,
        { role: 'user', text: 'second turn [[sim:tokens=6, delay=0]]' },
        { role: 'model', text: replyText(second) }
      ]
      expect(replyText(third)).toBe(
        replyText(await postChat(c.url, { message: 'third turn [[sim:tokens=6, delay=0]]', history: history3 }))
      )
    })

    test('nginx spreads concurrent streams over the replicas (least_conn), SSE intact', async () => {
      const results = await Promise.all(
        Array.from({ length: 9 }, () => postChat(nginx.url, { message: 'spread [[sim:tokens=10, delay=20]]', history: [] }))
      )
      for (const r of results) {
        expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/)
        expect(terminal(r).map((e) => e.event)).toEqual(['done'])
      }
      const ua = [...nginx.accessLog().matchAll(/"POST \/api\/chat[^"]*" 200 .*ua="([^"]+)"/g)].map((m) => m[1])
      expect(new Set(ua.slice(-9)).size).toBe(3)
    })

    test('SIGKILL of one replica under load: the others finish intact, nginx routes around it, its streams resume with stream_lost', async () => {
      const [a, b, victim] = replicas as [ChildGateway, ChildGateway, ChildGateway]
      const simBefore = sim.stats().requests
      // 30 concurrent streams of 40 chunks, 25 ms apart: 6 straight to the victim (so we know they were
      // there), 4 straight to each survivor, 16 through nginx (spread over all three).
      const targets = [
        ...Array(6).fill(victim.url),
        ...Array(4).fill(a.url),
        ...Array(4).fill(b.url),
        ...Array(16).fill(nginx.url)
      ] as string[]
      const seen = targets.map(() => 0)
      const requestIds = targets.map(() => '')
      const runs = targets.map((url, i) =>
        stream(url, { message: LOAD_PROMPT, history: [] }, (e) => {
          if (e.event === 'meta') requestIds[i] = e.json.requestId as string
          if (e.event === 'chunk') seen[i] = Number(e.id)
        })
      )
      await until(() => seen.every((n) => n >= 8), 'every stream to be under way')
      // What Redis holds of each stream before the kill: a resume must replay at least that.
      const held = new Map<string, number>()
      const snapshot = async () => {
        for (const id of requestIds) held.set(id, await storedEvents(admin, id))
        return requestIds.slice(0, 6).every((id) => held.get(id)! >= 5)
      }
      await until(snapshot, "Redis to hold the victim's first events")
      victim.child.kill('SIGKILL')
      await Promise.race([victim.exited, new Promise((r) => setTimeout(r, 5_000))])
      const outcomes = await Promise.all(runs)

      const onVictim = outcomes.slice(0, 6)
      const onSurvivors = outcomes.slice(6, 14)
      const viaNginx = outcomes.slice(14)
      // The victim's direct clients: cut, no terminal event.
      for (const o of onVictim) {
        expect(o.cut).toBe(true)
        expect(terminals(o.events)).toEqual([])
        expect(reference.startsWith(text(o.events))).toBe(true)
      }
      // The survivors' streams: complete and byte for byte the reference.
      for (const o of onSurvivors) {
        expect(o.cut).toBe(false)
        expect(terminals(o.events).map((e) => e.event)).toEqual(['done'])
        expect(text(o.events)).toBe(reference)
      }
      // Through nginx: every stream either completed intact on a survivor (its "chat turn" log line names
      // it), or was cut (without `done`) because it was on the victim (no survivor logged it).
      const loggedBy = (c: ChildGateway) =>
        new Set(
          c.lines.flatMap((l) => {
            try {
              const j = JSON.parse(l)
              return j.msg === 'chat turn' ? [j.requestId as string] : []
            } catch {
              return []
            }
          })
        )
      const idOf = (o: Outcome) => o.events[0]!.json.requestId as string
      const completed = viaNginx.filter((o) => !o.cut)
      await until(() => {
        const logged = new Set([...loggedBy(a), ...loggedBy(b)])
        return completed.every((o) => logged.has(idOf(o)))
      }, 'the survivors to log their turns')
      const servedBySurvivors = new Set([...loggedBy(a), ...loggedBy(b)])
      for (const o of completed) {
        expect(text(o.events)).toBe(reference)
        expect(terminals(o.events).map((e) => e.event)).toEqual(['done'])
      }
      const cutViaNginx = viaNginx.filter((o) => o.cut)
      for (const o of cutViaNginx) {
        expect(servedBySurvivors.has(idOf(o))).toBe(false)
        expect(terminals(o.events).filter((e) => e.event === 'done')).toEqual([])
        expect(reference.startsWith(text(o.events))).toBe(true)
      }
      expect(completed.length + cutViaNginx.length).toBe(16)
      expect(cutViaNginx.length).toBeLessThan(16) // least_conn put most of them on the survivors (the victim already held 6)

      // New requests through nginx succeed: the dead replica refuses connections, nginx retries elsewhere.
      const after = await Promise.all(
        Array.from({ length: 6 }, () => postChat(nginx.url, { message: 'after the kill [[sim:tokens=5, delay=0]]', history: [] }))
      )
      for (const r of after) {
        expect(r.status).toBe(200)
        expect(terminal(r).map((e) => e.event)).toEqual(['done'])
      }

      // The victim's clients resume on a survivor: what Redis holds after their Last-Event-ID, then stream_lost.
      const cutOnes = [...onVictim, ...cutViaNginx]
      for (const [i, o] of cutOnes.entries()) {
        const requestId = o.events[0]!.json.requestId as string
        const lastId = chunkIds(o.events).at(-1) ?? 0
        const rest = await resume((i % 2 ? a : b).url, requestId, lastId, { signal: AbortSignal.timeout(10_000) })
        expect(rest.status).toBe(200)
        const ids = chunkIds(rest.events)
        expect(ids).toEqual(Array.from({ length: ids.length }, (_, k) => lastId + 1 + k))
        expect(rest.events.at(-1)!.event).toBe('error')
        expect(rest.events.at(-1)!.json).toMatchObject({ code: 'stream_lost' })
        expect(terminal(rest)).toHaveLength(1)
        expect(reference.startsWith(text(o.events) + replyText(rest))).toBe(true)
        // From the start, the same prefix the client had (what reached Redis), then the same error.
        const full = await resume(nginx.url, requestId, 0, { signal: AbortSignal.timeout(10_000) })
        expect(full.status).toBe(200)
        expect(reference.startsWith(replyText(full))).toBe(true)
        // Whatever Redis held before the kill is replayed, in order and from the first event (only what the
        // replica was still writing when it died can be missing).
        const replayed = chunkIds(full.events)
        expect(replayed).toEqual(Array.from({ length: replayed.length }, (_, k) => k + 1))
        expect(replayed.length).toBeGreaterThanOrEqual(held.get(requestId)!)
        expect(full.events.at(-1)!.json.code).toBe('stream_lost')
      }
      expect(sim.stats().requests - simBefore).toBe(30 + 6)
    }, 120_000)
  }
)

describe.skipIf(lacks('the topology quota suite', 'redis-server', 'redis-cli', 'nginx')).each(MODES)(
  'the upstream quota across three replicas behind nginx (%s)',
  (mode) => {
    let redis: SharedRedis
    let sim: Simulator
    let replicas: ChildGateway[] = []
    let nginx: TestNginx

    beforeAll(async () => {
      ;({ redis, sim, replicas, nginx } = await startTopology(mode, 0, { UPSTREAM_RPM: '5', QUOTA_MAX_WAIT_MS: '0' }))
    }, 120_000)

    afterAll(() => stopTopology({ redis, sim, replicas, nginx }), 60_000)

    test('UPSTREAM_RPM=5 holds for all replicas together: of 12 turns, 5 reach the upstream, 7 are 429 rate_limited', async () => {
      const before = sim.stats().requests
      const results = []
      for (let i = 0; i < 12; i++) results.push(await postChat(nginx.url, { message: `quota turn ${i} [[sim:tokens=2]]`, history: [] }))
      const ok = results.filter((r) => r.status === 200)
      const refused = results.filter((r) => r.status === 429)
      expect(ok).toHaveLength(5)
      for (const r of ok) expect(terminal(r).map((e) => e.event)).toEqual(['done'])
      expect(refused).toHaveLength(7)
      for (const r of refused) expect(r.body.error.code).toBe('rate_limited')
      expect(sim.stats().requests - before).toBe(5)
      // Round robin through nginx: the turns were spread over all three replicas.
      const ua = [...nginx.accessLog().matchAll(/"POST \/api\/chat[^"]*" \d+ .*ua="([^"]+)"/g)].map((m) => m[1])
      expect(new Set(ua).size).toBe(3)
    })
  }
)
