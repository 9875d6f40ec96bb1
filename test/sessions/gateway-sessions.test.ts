// Sessions through real gateways: a lock write lost in a Redis hang, tenants with API keys, and what
// the Redis the gateway ships with may evict. Faults are real signals; nothing here waits on a clock.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { postChat, resume, terminal, type ChatResult } from '../helpers/sse.js'
import { startGateway, until, type TestGateway } from '../helpers/gateway.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { freePort } from '../helpers/ports.js'
import { executable, lacks } from '../helpers/system.js'

/** A turn's outcome as one word: the terminal event of a stream, or the code of a refusal. */
const outcome = (r: ChatResult) => (r.status === 200 ? (terminal(r)[0]?.event ?? 'lost') : `${r.status} ${r.body?.error?.code}`)
const upOf = async (gw: TestGateway) => (await (await fetch(`${gw.url}/metrics`)).text()).match(/^gateway_redis_up (\d)/m)?.[1]

describe.skipIf(lacks('the session lock fault test', 'redis-server'))('a session turn during a Redis hang', () => {
  let redis: TestRedis
  let replicas: TestGateway[]
  beforeAll(async () => {
    redis = await startRedis()
    const env = { REDIS_URL: redis.url, SESSION_STORE: 'redis', REDIS_COMMAND_TIMEOUT_MS: '500' }
    replicas = [await startGateway(env, {}, { logs: true }), await startGateway(env)]
  })
  afterAll(async () => {
    for (const r of replicas ?? []) await r.close()
    await redis?.stop()
  })

  test('its lock write timed out and ran when Redis resumed: the next turn, on any replica, is not session_busy', async () => {
    const [a, b] = replicas as [TestGateway, TestGateway]
    const opened = await postChat(a.url, { message: 'open [[sim:tokens=2]]' })
    expect(outcome(opened)).toBe('done')
    const sessionId = opened.events[0]!.json.sessionId as string
    redis.pause()
    try {
      expect(outcome(await postChat(a.url, { message: 'during the hang', sessionId }))).toBe('503 store_unavailable')
    } finally {
      redis.resume()
    }
    // The turn's lock write was sent and timed out (it was not refused before reaching Redis).
    expect(a.logs.some((l) => l.msg === 'redis command failed' && l.op === 'session.begin')).toBe(true)
    await until(async () => (await upOf(a)) === '1' && (await upOf(b)) === '1', 'both replicas to see Redis answer')
    const next = await postChat(b.url, { message: 'after the hang [[sim:tokens=2]]', sessionId })
    expect(outcome(next)).toBe('done')
    expect(outcome(await postChat(a.url, { message: 'and here [[sim:tokens=2]]', sessionId }))).toBe('done')
  })
})

describe.each([
  { store: 'memory', needs: false },
  { store: 'redis', needs: true }
])('sessions and API keys ($store store)', ({ needs }) => {
  let redis: TestRedis | undefined
  let gw: TestGateway
  const skip = needs && lacks('the Redis session store', 'redis-server')
  beforeAll(async () => {
    if (skip) return
    redis = needs ? await startRedis() : undefined
    gw = await startGateway({
      API_KEYS: 'tenant-a-key,tenant-b-key',
      ...(redis ? { REDIS_URL: redis.url, SESSION_STORE: 'redis' } : {})
    })
  })
  afterAll(async () => {
    await gw?.close()
    await redis?.stop()
  })
  const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } })

  test.skipIf(skip)("a session is its key's: another key gets what an unknown id gets, and the owner goes on undisturbed", async () => {
    const opened = await postChat(gw.url, { message: 'mine [[sim:tokens=2]]' }, as('tenant-a-key'))
    expect(outcome(opened)).toBe('done')
    const sessionId = opened.events[0]!.json.sessionId as string
    const unknown = await postChat(gw.url, { message: 'guess', sessionId: 'no-such-session-0000' }, as('tenant-b-key'))
    const foreign = await postChat(gw.url, { message: 'take over', sessionId }, as('tenant-b-key'))
    expect(outcome(foreign)).toBe('404 session_not_found')
    expect(foreign.body.error.message).toBe(unknown.body.error.message)
    expect(foreign.body.error).not.toHaveProperty('sessionId')
    const next = await postChat(gw.url, { message: 'still mine [[sim:tokens=2]]', sessionId }, as('tenant-a-key'))
    expect(outcome(next)).toBe('done')
  })
})

describe.skipIf(lacks('the Redis eviction checks', 'redis-server'))('the Redis operators run', () => {
  test('every key the gateway writes has a TTL, so that expiry, not eviction, is how keys normally go', async () => {
    const redis = await startRedis()
    const gw = await startGateway({
      REDIS_URL: redis.url,
      SESSION_STORE: 'redis',
      RATE_LIMIT_MAX: '100000',
      UPSTREAM_RPM: '100000',
      UPSTREAM_TPM: '100000000'
    })
    const admin = new Redis(redis.url)
    try {
      const opened = await postChat(gw.url, { message: 'open [[sim:tokens=2]]' })
      const sessionId = opened.events[0]!.json.sessionId as string
      expect(outcome(await postChat(gw.url, { message: 'on [[sim:tokens=2]]', sessionId }))).toBe('done')
      expect(outcome(await postChat(gw.url, { message: 'stateless [[sim:tokens=2]]', history: [] }))).toBe('done')
      const requestId = opened.events[0]!.json.requestId as string
      expect((await resume(gw.url, requestId, 0)).status).toBe(200)
      const keys = await admin.keys('*')
      expect(keys.length).toBeGreaterThan(5)
      const withoutTtl = []
      for (const key of keys) if ((await admin.pttl(key)) === -1) withoutTtl.push(key)
      expect(withoutTtl).toEqual([])
    } finally {
      admin.disconnect()
      await gw.close()
      await redis.stop()
    }
  })

  /** The redis-server arguments of a deploy file: the one-line list after `marker`. */
  const argsIn = (file: string, marker: string): string[] => {
    const line = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8')
      .split('\n')
      .find((l) => l.trim().startsWith(marker))!
    return (JSON.parse(line.slice(line.indexOf('[')).replaceAll("'", '"')) as string[]).slice(1)
  }

  /** The memory limit of the Redis container in a deploy file, in MiB. */
  const limitMiB = (file: string): number => {
    const text = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8')
    const redisPart = text.slice(text.search(/^ {2}redis:$|name: redis$/m))
    const found = /mem_limit: (\d+)m\b|limits: \{[^}]*memory: (\d+)Mi/.exec(redisPart)
    return Number(found?.[1] ?? found?.[2])
  }

  test.each([
    ['docker-compose.yml', 'command:'],
    ['deploy/kubernetes.yaml', 'args:']
  ])('%s runs Redis with a memory bound and LRU eviction, below its memory limit', async (file, marker) => {
    const args = argsIn(file, marker)
    const port = await freePort()
    const server = spawn(executable('redis-server'), [...args, '--port', String(port), '--bind', '127.0.0.1'], { stdio: 'ignore' })
    const client = new Redis({ port, lazyConnect: true, retryStrategy: () => 50 })
    client.on('error', () => {}) // refused until the server listens
    try {
      await until(async () => (await client.ping().catch(() => '')) === 'PONG', 'redis-server to start with those arguments')
      const [, maxmemory] = (await client.config('GET', 'maxmemory')) as [string, string]
      const [, policy] = (await client.config('GET', 'maxmemory-policy')) as [string, string]
      expect(policy).toBe('allkeys-lru')
      expect(Number(maxmemory)).toBeGreaterThan(0)
      expect(Number(maxmemory)).toBeLessThanOrEqual(limitMiB(file) * (1 << 20) * 0.8)
    } finally {
      client.disconnect()
      server.kill('SIGKILL')
    }
  })
})
