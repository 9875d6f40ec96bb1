// The two processes under test, started from the build output: the Gemini simulator and the gateway.
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, spawnNode, type Child } from './children.js'

const dist = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url))
const SIMULATOR_JS = dist('src/simulator/main.js')
const GATEWAY_JS = dist('src/server.js')

export interface Service {
  name: string
  url: string
  child: Child
  /** Whether it serves the gateway's /metrics (the references do not). */
  metrics: boolean
  stop(): Promise<number | null>
}

/** Simulator timing: SIM_TOKENS, SIM_TTFT_MS, SIM_DELAY_MS… (SIM_TOKENS_PER_CHUNK defaults to 1). */
export type SimEnv = Record<`SIM_${string}`, string>

export async function startSimulator(env: SimEnv): Promise<Service> {
  const child = spawnNode('simulator', SIMULATOR_JS, { PORT: '0', HOST: '127.0.0.1', SIM_TOKENS_PER_CHUNK: '1', ...env })
  const url = await new Promise<string>((resolve, reject) => {
    child.onLine((line) => {
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line)?.[1]
      if (url) resolve(url)
    })
    void child.exited.then((code) => reject(new Error(`simulator exited with ${code}: ${child.lines.join('\n')}`)))
  })
  return { name: 'simulator', url, child, metrics: false, stop: () => child.stop() }
}

/**
 * A gateway calling `simulatorUrl`. `env` overrides the benchmark defaults (LOG_LEVEL=warn, a short
 * drain so that stopping is quick). Resolves once GET /readyz answers 200.
 */
export async function startGateway(simulatorUrl: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<Service> {
  const port = await freePort()
  const child = spawnNode(
    'gateway',
    GATEWAY_JS,
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      GEMINI_API_KEY: 'bench',
      GEMINI_BASE_URL: simulatorUrl,
      LOG_LEVEL: 'warn',
      SHUTDOWN_GRACE_MS: '1000',
      ...env
    },
    nodeArgs
  )
  const url = `http://127.0.0.1:${port}`
  const service = { name: 'gateway', url, child, metrics: true, stop: () => child.stop(10_000) }
  await waitReady(service, 120_000)
  return service
}

async function waitReady(service: Service, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (service.child.proc.exitCode !== null) {
      throw new Error(`${service.name} exited with ${service.child.proc.exitCode}: ${service.child.lines.slice(-20).join('\n')}`)
    }
    try {
      const res = await fetch(`${service.url}/readyz`, { signal: AbortSignal.timeout(2_000) })
      await res.arrayBuffer()
      if (res.status === 200) return
    } catch {
      // not listening yet
    }
    await sleep(100)
  }
  await service.stop()
  throw new Error(`${service.name} not ready within ${timeoutMs} ms`)
}

/** Gateway knobs that admit `concurrency` streams at once on `threads` workers, so that nothing is refused. */
export function admitAll(
  concurrency: number,
  threads: number
): Record<'POOL_MIN_THREADS' | 'POOL_MAX_THREADS' | 'POOL_TASKS_PER_WORKER' | 'POOL_MAX_QUEUE', string> {
  return {
    POOL_MIN_THREADS: String(threads),
    POOL_MAX_THREADS: String(threads),
    POOL_TASKS_PER_WORKER: String(Math.min(4_096, Math.max(64, Math.ceil(concurrency / threads)))),
    POOL_MAX_QUEUE: String(Math.max(1_024, concurrency))
  }
}

/**
 * Starts a simulator and (unless `gatewayEnv` is null) a gateway, runs `fn`, and always stops both.
 * `gatewayNodeArgs`: extra node flags for the gateway (e.g. --cpu-prof).
 */
export async function withStack<T>(
  simEnv: SimEnv,
  gatewayEnv: Record<string, string>,
  fn: (stack: { simulator: Service; gateway: Service }) => Promise<T>,
  gatewayNodeArgs?: string[]
): Promise<T>
export async function withStack<T>(
  simEnv: SimEnv,
  gatewayEnv: Record<string, string> | null,
  fn: (stack: { simulator: Service; gateway: Service | undefined }) => Promise<T>,
  gatewayNodeArgs?: string[]
): Promise<T>
export async function withStack<T>(
  simEnv: SimEnv,
  gatewayEnv: Record<string, string> | null,
  fn: (stack: { simulator: Service; gateway: Service }) => Promise<T>,
  gatewayNodeArgs: string[] = []
): Promise<T> {
  const simulator = await startSimulator(simEnv)
  let gateway: Service | undefined
  try {
    if (gatewayEnv) gateway = await startGateway(simulator.url, gatewayEnv, gatewayNodeArgs)
    // Undefined only when gatewayEnv is null, where the overload lets fn take undefined.
    return await fn({ simulator, gateway: gateway as Service })
  } finally {
    if (gateway) {
      const code = await gateway.stop()
      if (code !== 0) process.stderr.write(`gateway exited with ${code}\n`)
    }
    await simulator.stop()
  }
}
