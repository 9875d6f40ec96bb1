// A real nginx built from deploy/nginx.conf: the lines marked `# subst:` are rewritten to loopback
// upstreams, a free listen port and paths in a temp dir; everything else is the deployed file.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from './ports.js'
import { executable } from './system.js'

export const NGINX_CONF = fileURLToPath(new URL('../../deploy/nginx.conf', import.meta.url))

/** The deploy config with its upstream `server` line replaced by one line per `upstreams` entry (host:port),
 * and, when `dir` is given, the listen port, pid, logs and temp paths moved there. */
export function renderNginxConf(upstreams: string[], opts: { dir?: string; listenPort?: number } = {}): string {
  const source = readFileSync(NGINX_CONF, 'utf8')
  let upstreamLines = 0
  const out = source.split('\n').flatMap((line) => {
    const marker = /#\s*subst:\s*(\w+)\s*$/.exec(line)
    if (!marker) return [line]
    const indent = /^\s*/.exec(line)![0]
    const kind = marker[1]!
    if (kind === 'upstream') {
      upstreamLines++
      const params = /server\s+\S+\s+([^;]*);/.exec(line)?.[1] ?? ''
      return upstreams.map((u) => `${indent}server ${u} ${params};`)
    }
    const { dir, listenPort } = opts
    if (!dir) return [line]
    switch (kind) {
      case 'pid':
        return [`${indent}pid ${join(dir, 'nginx.pid')};`]
      case 'error_log':
        return [`${indent}error_log ${join(dir, 'error.log')} warn;`]
      case 'access_log':
        return [`${indent}access_log ${join(dir, 'access.log')} gw;`]
      case 'temp': {
        const m = /^\s*(\w+_temp_path)\s/.exec(line)
        if (!m) throw new Error(`unexpected temp line: ${line}`)
        return [`${indent}${m[1]} ${join(dir, m[1]!)};`]
      }
      case 'listen':
        return listenPort === undefined ? [line] : [`${indent}listen 127.0.0.1:${listenPort};`]
      default:
        throw new Error(`unknown substitution ${kind}`)
    }
  })
  if (upstreamLines !== 1) throw new Error(`deploy/nginx.conf must have exactly one upstream server line, found ${upstreamLines}`)
  return out.join('\n')
}

export interface TestNginx {
  url: string
  dir: string
  conf: string
  process: ChildProcess
  accessLog(): string
  stop(): Promise<void>
}

/** `nginx -t` on a config file; returns status and output. */
export function nginxTest(conf: string, prefix: string): { status: number | null; output: string } {
  const r = spawnSync(executable('nginx'), ['-t', '-c', conf, '-p', prefix], { encoding: 'utf8', timeout: 10_000 })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

export async function startNginx(upstreams: string[]): Promise<TestNginx> {
  const dir = mkdtempSync(join(tmpdir(), 'gw-nginx-'))
  chmodSync(dir, 0o755) // nginx workers run as an unprivileged user when the test runs as root
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, renderNginxConf(upstreams, { dir, listenPort: port }))
  const checked = nginxTest(conf, dir)
  if (checked.status !== 0) throw new Error(`nginx -t failed: ${checked.output}`)
  const child = spawn(executable('nginx'), ['-c', conf, '-p', dir, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] })
  const stderr: string[] = []
  child.stderr.on('data', (d: Buffer) => stderr.push(d.toString()))
  const exited = once(child, 'exit')
  // Ready when the port accepts connections (bounded).
  const deadline = Date.now() + 10_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr.join('')}`)
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      }).once('error', () => resolve(false))
    })
    if (ok) break
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`nginx did not listen on ${port}: ${stderr.join('')}`)
    }
    await new Promise((r) => setTimeout(r, 25))
  }
  return {
    url: `http://127.0.0.1:${port}`,
    dir,
    conf,
    process: child,
    accessLog: () => {
      try {
        return readFileSync(join(dir, 'access.log'), 'utf8')
      } catch {
        return ''
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGTERM: nginx's fast shutdown, the master stops its workers too (SIGKILL would orphan them).
        child.kill('SIGTERM')
        const stopped = await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))])
        if (!stopped) child.kill('SIGKILL')
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
