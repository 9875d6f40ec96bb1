// The real process (`node dist/src/server.js`, what `npm start` runs) as a child, for signals and logs.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const SERVER_JS = fileURLToPath(new URL('../../dist/src/server.js', import.meta.url))
export const SIMULATOR_JS = fileURLToPath(new URL('../../dist/src/simulator/main.js', import.meta.url))

export interface ChildGateway {
  url: string
  child: ChildProcess
  /** Every stdout line (JSON when the logger wrote it). */
  lines: string[]
  stderr: string[]
  exited: Promise<number | null>
}

export async function startChild(env: Record<string, string>): Promise<ChildGateway> {
  const child = spawn(process.execPath, [SERVER_JS], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines: string[] = []
  const stderr: string[] = []
  createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line))
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line)
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
      if (match) resolve(match[1]!)
    })
    void exited.then((code) => reject(new Error(`server exited with ${code}: ${stderr.join('\n')}`)))
  })
  return { url, child, lines, stderr, exited }
}
