// Writes a scenario's results: bench/results/<scenario>-<timestamp>.json, a copy as
// <scenario>-latest.json, and the printed tables as <scenario>-latest.md (pasted into bench/README.md).
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'

export const RESULTS_DIR = fileURLToPath(new URL('../../../bench/results/', import.meta.url))

/** The soft limit on open files this process (and so every child) runs with. */
export function openFilesLimit(): string {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'))
    const [soft, hard] = line?.replace('Max open files', '').trim().split(/\s+/) ?? []
    return `${soft} (hard ${hard})`
  } catch {
    return 'unknown'
  }
}

function commit(): string | undefined {
  try {
    // Read-only: which source the numbers belong to (a dirty tree is marked). GIT_OPTIONAL_LOCKS=0
    // keeps `git status` from rewriting the index.
    const options = {
      encoding: 'utf8' as const,
      stdio: ['ignore', 'pipe', 'ignore'] as ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' }
    }
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], options).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], options).trim()
    return dirty ? `${head}+dirty` : head
  } catch {
    return undefined
  }
}

export function machine() {
  return {
    node: process.version,
    cores: availableParallelism(),
    cpu: cpus()[0]?.model,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    openFilesLimit: openFilesLimit(),
    loadavgAtEnd: loadavg().map((l) => Number(l.toFixed(2)))
  }
}

/** The header line printed above every scenario's tables. */
export function machineLine(): string {
  const m = machine()
  return `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, node ${m.node}, ${m.cores} cores (${m.cpu ?? '?'}), ${m.memoryGb} GiB, open files ${m.openFilesLimit}`
}

export function writeResults(scenario: string, data: unknown, markdown: string): string {
  mkdirSync(RESULTS_DIR, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const json = JSON.stringify({ scenario, date: new Date().toISOString(), commit: commit(), machine: machine(), markdown, data }, null, 2)
  const file = `${RESULTS_DIR}${scenario}-${stamp}.json`
  writeFileSync(file, json)
  writeFileSync(`${RESULTS_DIR}${scenario}-latest.json`, json)
  writeFileSync(`${RESULTS_DIR}${scenario}-latest.md`, `${markdown}\n`)
  return file
}
