// The real programs a suite starts, found the way `npm test` provisions them (test/system/deps.mjs).
// A suite never skips silently: under CI=1 a missing program fails the suite with the reason and
// the command that installs it; elsewhere the suite is skipped and the reason is printed.
import { findExecutable, installHint, SYSTEM_DEPS, type SystemDep } from '../system/deps.mjs'

export type SystemProgram = 'redis-server' | 'redis-cli' | 'nginx' | 'chromium' | 'docker-compose'

const BY_NPM_TEST = 'npm test installs them itself as root or with passwordless sudo'
const inCi = ['1', 'true'].includes((process.env.CI ?? '').toLowerCase())

const depOf = (name: SystemProgram): SystemDep => {
  const dep = SYSTEM_DEPS.find((d) => d.name === name)
  if (!dep) throw new Error(`no system dependency named ${name}`)
  return dep
}

/** The program's executable; throws with what is missing and how to install it (`npm test` does). */
export function executable(name: SystemProgram): string {
  const found = findExecutable(depOf(name))
  if (!found) throw new Error(`${installHint([depOf(name)])}; ${BY_NPM_TEST}`)
  return found
}

/**
 * For `describe.skipIf` and `test.skipIf`: true only outside CI when a program is missing, after
 * printing why. Under CI=1 always false, so the suite runs and fails on `executable()`'s reason.
 */
export function lacks(suite: string, ...names: SystemProgram[]): boolean {
  const missing = names.map(depOf).filter((d) => !findExecutable(d))
  if (missing.length === 0 || inCi) return false
  process.stderr.write(`skipped ${suite}: ${installHint(missing)}; ${BY_NPM_TEST}\n`)
  return true
}
