import { expect, test } from 'vitest'
import { availableParallelism } from 'node:os'
import { ConfigError, loadConfig } from '../src/config.js'

test('defaults: a typed, frozen config', () => {
  const config = loadConfig({})
  expect(config).toMatchObject({
    PORT: 3000,
    HOST: '127.0.0.1',
    POOL_MODE: 'pool',
    POOL_TASKS_PER_WORKER: 256,
    CHAOS: false,
    LOG_CONTENT: false,
    POOL_MIN_THREADS: availableParallelism(),
    POOL_MAX_THREADS: availableParallelism(),
    useSimulator: true,
    allowedModels: ['gemini-2.5-flash', 'gemini-2.5-flash-lite', 'gemini-2.5-pro']
  })
  expect(Object.isFrozen(config)).toBe(true)
})

test('strings are coerced to the schema types; unrelated variables are ignored', () => {
  const config = loadConfig({ PORT: '8080', CHAOS: '1', LOG_CONTENT: 'true', GEMINI_API_KEY: 'k', HOME: '/root', PORT_X: 'nope' })
  expect(config.PORT).toBe(8080)
  expect(config.CHAOS).toBe(true)
  expect(config.LOG_CONTENT).toBe(true)
  expect(config.useSimulator).toBe(false)
  expect(config).not.toHaveProperty('HOME')
})

test('an empty value means unset', () => {
  expect(loadConfig({ GEMINI_API_KEY: '', POOL_MAX_THREADS: '' }).useSimulator).toBe(true)
})

test.each([
  ['PORT', '70000', /PORT="70000" is not allowed \(must be <= 65535\); expected >= 0, <= 65535, an integer/],
  ['PORT', 'http', /PORT="http" is not allowed \(must be integer\)/],
  ['POOL_TASKS_PER_WORKER', '0', /POOL_TASKS_PER_WORKER="0" is not allowed \(must be >= 1\)/],
  ['WORKER_STALL_MS', '1.5', /WORKER_STALL_MS="1.5" is not allowed \(must be integer\)/],
  ['POOL_MODE', 'threads', /POOL_MODE="threads" is not allowed .*expected one of pool, inline/],
  ['LOG_LEVEL', 'loud', /LOG_LEVEL="loud" is not allowed .*expected one of fatal, error, warn, info, debug, trace, silent/],
  ['CHAOS', 'yes', /CHAOS="yes" is not allowed .*expected one of 0, 1, true, false/],
  ['GEMINI_BASE_URL', 'ftp://x', /GEMINI_BASE_URL="ftp:\/\/x" is not allowed .*matching \^https\?:\/\//],
  ['SIM_TOKENS', '0', /SIM_TOKENS="0" is not allowed \(must be >= 1\)/]
])('%s=%s is refused with one line naming it', (name, value, message) => {
  expect(() => loadConfig({ [name]: value })).toThrow(ConfigError)
  expect(() => loadConfig({ [name]: value })).toThrow(message)
})

test('cross-field rules', () => {
  expect(() => loadConfig({ POOL_MIN_THREADS: '4', POOL_MAX_THREADS: '2' })).toThrow(/POOL_MIN_THREADS=4 is above POOL_MAX_THREADS=2/)
  expect(() => loadConfig({ DEFAULT_MODEL: 'gemini-x' })).toThrow(/DEFAULT_MODEL="gemini-x" is not in ALLOWED_MODELS/)
})
