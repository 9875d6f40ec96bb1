// UPSTREAMS_FILE at start-up: what it makes, and every way it can be wrong, each one line that names
// the file and the deployment and never a key.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.js'
import { serviceAccountFile } from '../helpers/upstreams.js'

const dir = mkdtempSync(join(tmpdir(), 'upstreams-'))
let n = 0
const file = (content: unknown) => {
  const path = join(dir, `upstreams-${n++}.json`)
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content))
  return path
}
// No Application Default Credentials on this machine unless a test sets them.
const noAdc = { CLOUDSDK_CONFIG: mkdtempSync(join(tmpdir(), 'gcloud-')) }
const SECRET = 'AIzaSy-never-in-a-message-42'
const gemini = (extra: object = {}) => ({
  id: 'studio-a',
  provider: 'gemini',
  alias: 'chat',
  model: 'gemini-2.5-flash',
  apiKey: SECRET,
  ...extra
})

test('deployments become the aliases a request may name; the first alias is the default model; apiKeyEnv is read', () => {
  const path = file({
    deployments: [
      gemini(),
      { id: 'studio-b', provider: 'gemini', alias: 'chat', model: 'gemini-2.5-flash', apiKeyEnv: 'KEY_B', rpm: 10 },
      { id: 'local', provider: 'openai', alias: 'local', model: 'llama-3.1-8b', baseUrl: 'http://127.0.0.1:8000/v1', weight: 2 }
    ],
    fallbacks: { chat: ['local'] }
  })
  const config = loadConfig({ UPSTREAMS_FILE: path, KEY_B: 'key-b', ...noAdc })
  expect(config.allowedModels).toEqual(['chat', 'local'])
  expect(config.DEFAULT_MODEL).toBe('chat')
  expect(config.useSimulator).toBe(false)
  expect(config.upstreams.fallbacks).toEqual({ chat: ['local'] })
  expect(config.upstreams.deployments).toEqual([
    { id: 'studio-a', provider: 'gemini', alias: 'chat', model: 'gemini-2.5-flash', apiKey: SECRET, weight: 1 },
    { id: 'studio-b', provider: 'gemini', alias: 'chat', model: 'gemini-2.5-flash', apiKey: 'key-b', rpm: 10, weight: 1 },
    { id: 'local', provider: 'openai', alias: 'local', model: 'llama-3.1-8b', baseUrl: 'http://127.0.0.1:8000/v1', weight: 2 }
  ])
})

test('without the file every allowed model is its own deployment', () => {
  const config = loadConfig({ ALLOWED_MODELS: 'gemini-2.5-flash,gemini-2.5-pro' })
  expect(config.upstreams.deployments.map((d) => [d.id, d.alias, d.model])).toEqual([
    ['gemini-2.5-flash', 'gemini-2.5-flash', 'gemini-2.5-flash'],
    ['gemini-2.5-pro', 'gemini-2.5-pro', 'gemini-2.5-pro']
  ])
})

describe('a wrong file stops start-up with one line', () => {
  const sa = serviceAccountFile(dir, 'http://127.0.0.1:1/token')
  const vertex = (extra: object = {}) => ({
    id: 'vertex-br',
    provider: 'vertex',
    alias: 'chat',
    model: 'gemini-2.5-flash',
    project: 'p',
    location: 'southamerica-east1',
    ...extra
  })
  test.each([
    ['unreadable', () => join(dir, 'missing.json'), {}, /cannot be read \(ENOENT\)/],
    ['not JSON', () => file('{"deployments": ['), {}, /is not JSON/],
    [
      'an unknown provider',
      () => file({ deployments: [gemini({ provider: 'azure' })] }),
      {},
      /deployments\/0: unknown provider "azure"; expected one of gemini, vertex, openai/
    ],
    ['a duplicate id', () => file({ deployments: [gemini(), gemini()] }), {}, /deployments\/1 \(studio-a\): the id is used twice/],
    ['a gemini deployment without a key', () => file({ deployments: [gemini({ apiKey: undefined })] }), {}, /needs apiKey or apiKeyEnv/],
    [
      'an unset apiKeyEnv',
      () => file({ deployments: [gemini({ apiKey: undefined, apiKeyEnv: 'NOPE' })] }),
      {},
      /apiKeyEnv NOPE is not set/
    ],
    ['an unknown field', () => file({ deployments: [gemini({ region: 'x' })] }), {}, /\/deployments\/0\/region Unexpected property/],
    [
      'a vertex deployment without a location',
      () => file({ deployments: [vertex({ location: undefined, credentialsFile: sa })] }),
      {},
      /needs project and location/
    ],
    [
      'an unreadable key file',
      () => file({ deployments: [vertex({ credentialsFile: join(dir, 'nope.json') })] }),
      {},
      /credentialsFile ".*nope.json" cannot be read \(ENOENT\)/
    ],
    [
      'a key file that is not a service account',
      () => file({ deployments: [vertex({ credentialsFile: file({ type: 'authorized_user' }) })] }),
      {},
      /is not a service-account key/
    ],
    ['no credentials at all', () => file({ deployments: [vertex()] }), noAdc, /no credentialsFile and no Application Default Credentials/],
    [
      'an openai deployment without baseUrl',
      () => file({ deployments: [{ id: 'l', provider: 'openai', alias: 'l', model: 'm' }] }),
      {},
      /needs baseUrl/
    ],
    [
      'a fallback to an unknown alias',
      () => file({ deployments: [gemini()], fallbacks: { chat: ['big'] } }),
      {},
      /fallbacks\/chat: "big" is not an alias/
    ],
    [
      'a DEFAULT_MODEL that is no alias',
      () => file({ deployments: [gemini()] }),
      { DEFAULT_MODEL: 'gemini-2.5-pro' },
      /DEFAULT_MODEL="gemini-2.5-pro" is not in UPSTREAMS_FILE's aliases/
    ]
  ])('%s', (_name, path, env, message) => {
    const load = () => loadConfig({ UPSTREAMS_FILE: path(), ...env })
    expect(load).toThrow(ConfigError)
    expect(load).toThrow(message)
    try {
      load()
    } catch (err) {
      expect((err as Error).message.split('\n')).toHaveLength(1)
      expect((err as Error).message).not.toContain(SECRET)
      expect((err as Error).message).not.toContain('PRIVATE KEY')
    }
  })

  test('Application Default Credentials from GOOGLE_APPLICATION_CREDENTIALS are accepted', () => {
    const config = loadConfig({ UPSTREAMS_FILE: file({ deployments: [vertex()] }), ...noAdc, GOOGLE_APPLICATION_CREDENTIALS: sa })
    expect(config.upstreams.deployments[0]).toMatchObject({ provider: 'vertex', project: 'p', location: 'southamerica-east1' })
  })
})
