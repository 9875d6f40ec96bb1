// Child processes of a benchmark: spawned with a clean environment, their output kept as lines,
// and always stopped: on normal completion, on an exception, on SIGINT/SIGTERM and at exit.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'

const MAX_LINES = 20_000

export interface Child {
  name: string
  pid: number
  proc: ChildProcess
  /** stdout and stderr lines, oldest first (at most MAX_LINES are kept; `dropped` counts the rest). */
  lines: string[]
  dropped: number
  /** Called for every line from now on. */
  onLine(listener: (line: string) => void): void
  exited: Promise<number | null>
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
  stop(graceMs?: number): Promise<number | null>
}

const live = new Set<Child>()

export function spawnNode(name: string, script: string, env: Record<string, string>, nodeArgs: string[] = []): Child {
  const proc = spawn(process.execPath, [...nodeArgs, script], {
    // Only what the benchmark sets: a developer's GEMINI_API_KEY or LOG_LEVEL never leaks in.
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  if (proc.pid === undefined) throw new Error(`${name}: spawn failed`)
  const listeners: Array<(line: string) => void> = []
  const child: Child = {
    name,
    pid: proc.pid,
    proc,
    lines: [],
    dropped: 0,
    onLine: (listener) => {
      listeners.push(listener)
    },
    exited: once(proc, 'exit').then(([code]) => code as number | null),
    stop: async (graceMs = 5_000) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs)
      const code = await child.exited
      clearTimeout(timer)
      return code
    }
  }
  const keep = (line: string) => {
    if (child.lines.length < MAX_LINES) child.lines.push(line)
    else child.dropped++
    for (const listener of listeners) listener(line)
  }
  createInterface({ input: proc.stdout }).on('line', keep)
  createInterface({ input: proc.stderr }).on('line', keep)
  live.add(child)
  void child.exited.then(() => live.delete(child))
  return child
}

/** A child not started by spawnNode (nginx), stopped with the rest on exit or Ctrl-C. */
export function adopt(child: Child): void {
  live.add(child)
  void child.exited.then(() => live.delete(child))
}

/** A port free on 127.0.0.1 right now (the gateway logs its port only at info level). */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((child) => child.stop(3_000)))
}

let installed = false
/** Stops every child on Ctrl-C, on SIGTERM, on an uncaught error, and (SIGKILL) at any exit. */
export function installCleanup(): void {
  if (installed) return
  installed = true
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping ${live.size} child process(es)\n`)
      void stopAll().finally(() => process.exit(130))
    })
  }
  process.on('exit', () => {
    for (const child of live) child.proc.kill('SIGKILL')
  })
}
