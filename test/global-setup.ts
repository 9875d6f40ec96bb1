// Before any suite: compile with tsc. The worker threads, the child processes (`node dist/src/server.js`)
// and the page's client run compiled code, so a run from an IDE or `npx vitest run <file>` must not
// test what an earlier build left in dist/. A type error stops the run here, with tsc's report.
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type { TestProject } from 'vitest/node'

const root = fileURLToPath(new URL('..', import.meta.url))
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')

function build(): void {
  try {
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] })
  } catch {
    throw new Error('tsc failed (above): the tests would run a stale dist/, so none ran')
  }
}

export default function setup(project: TestProject): void {
  build()
  // In watch mode every rerun rebuilds, so an edited worker is what the rerun tests.
  project.onTestsRerun(build)
}
