// What tests of routing need around real servers: UPSTREAMS_FILE written to a temporary file, a
// service-account key file (a fresh RSA key, its token_uri the simulator's), a port nobody listens on.
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './ports.js'

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

/** A loopback URL that refuses connections: a port that was free a moment ago. */
export async function deadUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`
}
