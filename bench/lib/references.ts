// The floors bench:modes measures the gateway against, each relaying the same simulator stream:
// `bare` (bench/bare-relay.ts, Node's floor) and `nginx` (proxy_buffering off, the kernel's floor).
// nginx runs as one process (master_process off) so that its CPU time is one process's.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { accessSync, constants } from 'node:fs'
import { adopt, freePort, spawnNode, type Child } from './children.js'
import type { Service } from './services.js'

const BARE_JS = fileURLToPath(new URL('../bare-relay.js', import.meta.url))

async function listening(port: number, child: Child, name: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.proc.exitCode !== null) throw new Error(`${name} exited with ${child.proc.exitCode}: ${child.lines.join('\n')}`)
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1_000) })
      await res.arrayBuffer()
      return
    } catch {
      await sleep(50)
    }
  }
  throw new Error(`${name} did not listen on ${port}`)
}

export async function startBare(simulatorUrl: string): Promise<Service> {
  const port = await freePort()
  const child = spawnNode('bare', BARE_JS, { PORT: String(port), UPSTREAM_URL: simulatorUrl })
  await listening(port, child, 'bare relay')
  return { name: 'bare', url: `http://127.0.0.1:${port}`, child, metrics: false, stop: () => child.stop() }
}

/** NGINX_PATH, or nginx on PATH or in /usr/sbin (where Debian puts it, off a non-root PATH). */
export function nginxPath(): string | undefined {
  const candidates = process.env.NGINX_PATH
    ? [process.env.NGINX_PATH]
    : [...(process.env.PATH ?? '').split(':'), '/usr/sbin'].map((d) => join(d, 'nginx'))
  return candidates.find((path) => {
    try {
      accessSync(path, constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

export async function startNginx(simulatorUrl: string): Promise<Service> {
  const bin = nginxPath()
  if (!bin) throw new Error('bench:modes nginx needs nginx: apt-get install nginx (npm test installs it)')
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'bench-nginx-'))
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `${k}_temp_path ${join(dir, k)};`).join(' ')
  const conf = join(dir, 'nginx.conf')
  writeFileSync(
    conf,
    `daemon off; master_process off; worker_processes 1; pid ${join(dir, 'nginx.pid')}; error_log ${join(dir, 'error.log')} warn;
worker_rlimit_nofile 65535;
events { worker_connections 16384; }
http {
  access_log off; ${temp}
  upstream simulator { server ${new URL(simulatorUrl).host}; keepalive 1024; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://simulator;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`
  )
  const proc = spawn(bin, ['-c', conf, '-p', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
  if (proc.pid === undefined) throw new Error('nginx: spawn failed')
  const lines: string[] = []
  proc.stderr.setEncoding('utf8').on('data', (d: string) => lines.push(d))
  const exited = once(proc, 'exit').then(([code]) => code as number | null)
  const child: Child = {
    name: 'nginx',
    pid: proc.pid,
    proc,
    lines,
    dropped: 0,
    onLine: () => {},
    exited,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGQUIT')
      return exited
    }
  }
  adopt(child)
  await listening(port, child, 'nginx')
  return { name: 'nginx', url: `http://127.0.0.1:${port}`, child, metrics: false, stop: () => child.stop() }
}
