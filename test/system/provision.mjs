// @ts-check
// `npm test` runs this before the suite: every program the tests start (deps.mjs) is installed
// here, once, with apt-get when this machine allows it (root, or passwordless sudo). Anywhere else
// it stops at once with one line naming what is missing and how to install it, instead of a suite
// that fails or skips later for a reason it no longer says.
import { spawnSync } from 'node:child_process'
import { findExecutable, installHint, SYSTEM_DEPS, which } from './deps.mjs'

/** @param {string} line */
const say = (line) => process.stderr.write(`npm test: ${line}\n`)

const unusable = SYSTEM_DEPS.filter((d) => process.env[d.env] && !findExecutable(d))
if (unusable.length > 0) {
  say(unusable.map((d) => `${d.env}=${process.env[d.env]} is not an executable file`).join('; '))
  process.exit(1)
}
const missing = SYSTEM_DEPS.filter((d) => !findExecutable(d))
if (missing.length === 0) process.exit(0)

const as = installer()
if (as === undefined) {
  say(installHint(missing))
  process.exit(1)
}

/** @param {string[]} args */
const run = (args) => {
  const argv = ['env', 'DEBIAN_FRONTEND=noninteractive', ...args]
  /** @type {import('node:child_process').SpawnSyncOptionsWithStringEncoding} */
  const options = { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }
  return as === 'sudo' ? spawnSync('sudo', ['-n', ...argv], options) : spawnSync('env', argv.slice(1), options)
}
/**
 * @param {string} what
 * @param {import('node:child_process').SpawnSyncReturns<string>} result
 * @returns {never}
 */
const fail = (what, result) => {
  process.stderr.write(`${result.error?.message ?? ''}${result.stdout}${result.stderr}`.split('\n').slice(-20).join('\n'))
  say(`${what} failed (exit ${result.status}); ${installHint(missing)}`)
  process.exit(1)
}

const packages = missing.map((d) => d.apt)
say(`installing ${packages.join(', ')} with apt-get, once (the suites start them as real processes)`)
const update = run(['apt-get', 'update', '-qq'])
if (update.status !== 0) fail('apt-get update', update)
const install = run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...packages])
if (install.status !== 0) fail(`apt-get install ${packages.join(' ')}`, install)

// Debian starts the services it installs; the tests run their own on free ports.
for (const service of ['nginx', 'redis-server']) {
  if (packages.includes(service)) run(['service', service, 'stop'])
}

for (const dep of missing) {
  const found = findExecutable(dep)
  if (!found) {
    say(`apt-get installed ${dep.apt} but no ${dep.commands.join(' or ')} is on PATH`)
    process.exit(1)
  }
  const version = spawnSync('dpkg-query', ['-W', '-f=${Version}', dep.apt], { encoding: 'utf8' }).stdout.trim()
  say(`installed ${dep.apt} ${version} → ${found} (for ${dep.usedBy})`)
}

/**
 * Who can run apt-get here: this process as root, sudo without a password, or nobody (undefined).
 * @returns {'root' | 'sudo' | undefined}
 */
function installer() {
  if (process.platform !== 'linux' || !which('apt-get')) return undefined
  if (process.getuid?.() === 0) return 'root'
  return which('sudo') && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0 ? 'sudo' : undefined
}
