// Real redis-servers on free loopback ports, for tests of what replicas share: a single server, or a
// three-master Redis Cluster made with redis-cli --cluster create. Faults are real signals.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis } from 'ioredis'
import { startGateway, until, type TestGateway } from './gateway.js'
import { freePort } from './ports.js'
import { executable } from './system.js'

export interface TestRedis {
  url: string
  port: number
  process: ChildProcess
  /** SIGSTOP: the server keeps its connections and answers nothing. */
  pause(): void
  /** SIGCONT. */
  resume(): void
  /** SIGKILL, waiting for the exit. */
  kill(): Promise<void>
  /** A new, empty server on the same port (after kill). */
  restart(): Promise<void>
  stop(): Promise<void>
}

async function spawnServer(port: number, args: string[] = [], cwd?: string): Promise<ChildProcess> {
  const child = spawn(
    executable('redis-server'),
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...args],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      ...(cwd ? { cwd } : {})
    }
  )
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (data: Buffer) => {
      if (data.toString().includes('Ready to accept connections')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)))
    child.once('error', reject)
  })
  return child
}

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGCONT') // a stopped process cannot act on SIGKILL's exit until it runs
  child.kill('SIGKILL')
  await once(child, 'exit')
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort()
  let child = await spawnServer(port)
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get process() {
      return child
    },
    pause: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT'),
    kill: () => killed(child),
    async restart() {
      await killed(child)
      child = await spawnServer(port)
    },
    stop: () => killed(child)
  }
}

export interface TestRedisCluster {
  /** One node's URL: the client discovers the others. */
  url: string
  nodes: ChildProcess[]
  stop(): Promise<void>
}

/** A port whose cluster bus port (port + 10000) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (port + 10_000 > 65_535) continue
    const bus = spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${port + 10_000},'127.0.0.1',function(){this.close()}).on('error',()=>process.exit(1))`
    ])
    if (bus.status === 0) return port
  }
}

/** Three masters holding all 16,384 slots, ready when every node says cluster_state:ok. */
export async function startRedisCluster(): Promise<TestRedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-redis-cluster-'))
  const ports = [await clusterPort(), await clusterPort(), await clusterPort()]
  const nodes = await Promise.all(
    ports.map((port) =>
      spawnServer(port, ['--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000'], dir)
    )
  )
  const cli = executable('redis-cli')
  const created = spawnSync(
    cli,
    ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
    {
      encoding: 'utf8',
      timeout: 30_000
    }
  )
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`)
  for (const port of ports) {
    await until(
      () => spawnSync(cli, ['-p', String(port), 'cluster', 'info'], { encoding: 'utf8' }).stdout.includes('cluster_state:ok'),
      `node ${port} to see the cluster ok`
    )
  }
  return {
    url: `redis://127.0.0.1:${ports[0]}`,
    nodes,
    async stop() {
      await Promise.all(nodes.map(killed))
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

export type RedisMode = 'standalone' | 'cluster'

/** The test's own client of a Redis it started, for what a test reads or changes there directly. */
export function adminClient(url: string, mode: RedisMode): Redis | Cluster {
  return mode === 'cluster' ? new Cluster([{ host: '127.0.0.1', port: Number(new URL(url).port) }]) : new Redis(url)
}

/** A shared Redis of either kind, with the gateway settings that reach it. */
export async function startSharedRedis(
  mode: RedisMode
): Promise<{ env: { REDIS_URL: string; REDIS_MODE: RedisMode }; stop(): Promise<void> }> {
  const server = mode === 'cluster' ? await startRedisCluster() : await startRedis()
  return { env: { REDIS_URL: server.url, REDIS_MODE: mode }, stop: () => server.stop() }
}

export interface ReplicasOnRedis {
  redis: TestRedis
  /** A client of the test's own, to read or write what the replicas keep (it reconnects after a kill). */
  admin: Redis
  a: TestGateway
  b: TestGateway
  close(): Promise<void>
}

/** Two gateway replicas sharing one real Redis: what the suites about state across replicas start. */
export async function replicasOnRedis(env: Record<string, string>): Promise<ReplicasOnRedis> {
  const redis = await startRedis()
  const admin = adminClient(redis.url, 'standalone') as Redis
  admin.on('error', () => {}) // a fault the test makes is not the admin's failure
  const [a, b] = await Promise.all([startGateway({ REDIS_URL: redis.url, ...env }), startGateway({ REDIS_URL: redis.url, ...env })])
  return {
    redis,
    admin,
    a,
    b,
    async close() {
      admin.disconnect()
      await Promise.all([a.close(), b.close()])
      await redis.stop()
    }
  }
}
