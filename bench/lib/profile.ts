// Summarises V8 CPU profiles (`node --cpu-prof`, one .cpuprofile per thread) by where the self
// time went: an npm package, a Node internal area, the gateway's own files, GC, native calls.
import { readdirSync, readFileSync } from 'node:fs'
import { markdownTable } from './table.js'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string }
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

function bucket(node: ProfileNode): string {
  const { url, functionName } = node.callFrame
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC'
    if (functionName === '(idle)') return 'idle'
    if (functionName === '(program)') return '(program)'
    return `native ${functionName}`
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]
  if (pkg) return pkg
  if (url.startsWith('node:')) {
    const parts = url.slice(5).split('/')
    // node:internal/deps/undici is the fetch() the SDK uses
    return `node:${parts[0] === 'internal' ? parts.slice(0, parts[1] === 'deps' ? 3 : 2).join('/') : parts[0]}`
  }
  const own = /\/dist\/((?:src|workers)\/.*)$/.exec(url)
  return own ? `gateway ${own[1]}` : url
}

export interface ThreadProfile {
  file: string
  thread: number
  wallSec: number
  busySec: number
  top: Array<[string, number]>
}

export function summariseProfiles(dir: string, topN = 8): ThreadProfile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort()
    .map((file) => {
      const profile = JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) as Profile
      const byId = new Map(profile.nodes.map((n) => [n.id, n]))
      const self = new Map<string, number>()
      let wall = 0
      profile.samples.forEach((id, i) => {
        const dt = profile.timeDeltas[i] ?? 0
        wall += dt
        const node = byId.get(id)
        if (!node) return
        const b = bucket(node)
        self.set(b, (self.get(b) ?? 0) + dt)
      })
      const busy = wall - (self.get('idle') ?? 0)
      self.delete('idle')
      const top = [...self]
        .sort((a, b) => b[1] - a[1])
        .slice(0, topN)
        .map(([b, t]): [string, number] => [b, (100 * t) / busy])
      // CPU.<date>.<time>.<pid>.<threadId>.<seq>.cpuprofile; thread 0 is the front (main) thread.
      const thread = Number(file.split('.')[4])
      return { file, thread, wallSec: wall / 1e6, busySec: busy / 1e6, top }
    })
}

export function profileTable(threads: ThreadProfile[]): string {
  return markdownTable(
    ['thread', 'busy s / profiled s', 'self time, % of busy'],
    threads.map((t) => [
      t.thread === 0 ? 'front (0)' : `worker (${t.thread})`,
      `${t.busySec.toFixed(1)} / ${t.wallSec.toFixed(1)}`,
      t.top.map(([b, pct]) => `${b} ${pct.toFixed(1)}%`).join(', ')
    ])
  )
}
