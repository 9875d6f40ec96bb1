// @ts-check
// The programs the tests start as real parts (never mocks), the packages that carry them, and how a
// test finds them: an environment override first, then PATH. Plain JavaScript, because
// `npm test` provisions them (provision.mjs) before anything is compiled; the tests import it too.
import { accessSync, constants, statSync } from 'node:fs'
import { delimiter, join } from 'node:path'

/**
 * @typedef {object} SystemDep
 * @property {string} name what the tests call it
 * @property {string} env variable that points at the executable instead of PATH
 * @property {string[]} commands names tried on PATH, in order
 * @property {string} apt Debian/Ubuntu package
 * @property {string} brew Homebrew formula (or `--cask name`)
 * @property {string} usedBy which suites start it
 */

/** @type {readonly SystemDep[]} */
export const SYSTEM_DEPS = Object.freeze([
  {
    name: 'redis-server',
    env: 'REDIS_SERVER_PATH',
    commands: ['redis-server'],
    apt: 'redis-server',
    brew: 'redis',
    usedBy: 'sessions, quota, resume and topology'
  },
  {
    name: 'redis-cli',
    env: 'REDIS_CLI_PATH',
    commands: ['redis-cli'],
    apt: 'redis-tools',
    brew: 'redis',
    usedBy: 'the Redis Cluster suites'
  },
  { name: 'nginx', env: 'NGINX_PATH', commands: ['nginx'], apt: 'nginx', brew: 'nginx', usedBy: 'topology' },
  {
    name: 'chromium',
    env: 'CHROMIUM_PATH',
    commands: ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'],
    apt: 'chromium',
    brew: '--cask chromium',
    usedBy: 'browser'
  },
  {
    name: 'docker-compose',
    env: 'DOCKER_COMPOSE_PATH',
    commands: ['docker-compose'],
    apt: 'docker-compose',
    brew: 'docker-compose',
    usedBy: 'topology (compose file)'
  }
])

/** @param {string} path */
function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/**
 * The first `command` found on PATH, as an absolute path; undefined when there is none.
 * @param {string} command
 * @param {Record<string, string | undefined>} [env]
 * @returns {string | undefined}
 */
export function which(command, env = process.env) {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, command)
    if (dir && isExecutable(candidate)) return candidate
  }
  return undefined
}

/**
 * The executable for `dep`: the override when it is set (and executable), else the first of its
 * commands on PATH; undefined when there is none.
 * @param {SystemDep} dep
 * @param {Record<string, string | undefined>} [env]
 * @returns {string | undefined}
 */
export function findExecutable(dep, env = process.env) {
  const override = env[dep.env]
  if (override) return isExecutable(override) ? override : undefined
  for (const command of dep.commands) {
    const found = which(command, env)
    if (found) return found
  }
  return undefined
}

/**
 * One line a person can act on: what is missing and the commands that install it.
 * @param {readonly SystemDep[]} missing
 */
export function installHint(missing) {
  const names = missing.map((d) => d.name).join(', ')
  const apt = missing.map((d) => d.apt).join(' ')
  const brew = missing.filter((d) => !d.brew.startsWith('--cask')).map((d) => d.brew)
  const casks = missing.filter((d) => d.brew.startsWith('--cask')).map((d) => d.brew.slice('--cask '.length))
  const brewCommands = [brew.length ? `brew install ${brew.join(' ')}` : '', casks.length ? `brew install --cask ${casks.join(' ')}` : '']
    .filter(Boolean)
    .join(' && ')
  const overrides = missing.map((d) => d.env).join(', ')
  return `missing ${names} (looked in ${overrides} and on PATH); install with: sudo apt-get install -y ${apt} (Debian/Ubuntu) or: ${brewCommands} (macOS)`
}
