// Kernel TCP counters (Linux /proc/net/netstat, machine-wide; all traffic here is the benchmark's):
// ListenOverflows / ListenDrops count connection attempts dropped because a listening socket's
// accept queue was full, which clients see as connect timeouts or resets.

import { readFile } from 'node:fs/promises'

export type TcpCounters = Record<string, number>

const WANTED = ['ListenOverflows', 'ListenDrops', 'TCPAbortOnData', 'TCPAbortOnClose']

export async function tcpCounters(): Promise<TcpCounters> {
  try {
    const lines = (await readFile('/proc/net/netstat', 'utf8')).split('\n').filter((l) => l.startsWith('TcpExt:'))
    const names = lines[0]?.split(/\s+/).slice(1) ?? []
    const values = lines[1]?.split(/\s+/).slice(1).map(Number) ?? []
    return Object.fromEntries(names.map((n, i): [string, number] => [n, values[i] ?? 0]).filter(([n]) => WANTED.includes(n)))
  } catch {
    return {}
  }
}
