// What tests of routing need around real servers: simulators and gateways closed after each test,
// UPSTREAMS_FILE written to a temporary file, a service-account key file (a fresh RSA key, its
// token_uri the simulator's).
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach } from 'vitest'
import { startSimulator, type Simulator, type StartSimulatorOptions } from '../../src/simulator/index.js'
import { startGateway, type TestGateway } from './gateway.js'

type Closable = { close(): Promise<void> } | { stop(): Promise<void> }

/** Servers a test starts, closed (last first) after each test of the file that calls it. */
export function fleet() {
  const open: Closable[] = []
  afterEach(async () => {
    for (const x of open.splice(0).reverse()) await ('stop' in x ? x.stop() : x.close())
  })
  const own = <T extends Closable>(x: T): T => {
    open.push(x)
    return x
  }
  return {
    own,
    sim: async (options: StartSimulatorOptions = {}): Promise<Simulator> =>
      own(await startSimulator({ ttftMs: 0, delayMs: 0, tokens: 3, ...options })),
    /** A gateway that logs to memory and does not retry a deployment itself. */
    gateway: async (env: Record<string, string>): Promise<TestGateway> =>
      own(await startGateway({ UPSTREAM_RETRIES: '0', ...env }, {}, { logs: true }))
  }
}

export function upstreamsFile(content: object): string {
  const path = join(mkdtempSync(join(tmpdir(), 'upstreams-')), 'upstreams.json')
  writeFileSync(path, JSON.stringify(content))
  return path
}

export function serviceAccountFile(dir: string, tokenUri: string): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const path = join(dir, `service-account-${Date.now()}-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(
    path,
    JSON.stringify({
      type: 'service_account',
      project_id: 'citizens-prod',
      private_key_id: 'k1',
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      client_email: 'gateway@citizens-prod.iam.gserviceaccount.com',
      token_uri: tokenUri
    })
  )
  return path
}
