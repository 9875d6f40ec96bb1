// The in-memory sessions against a real, small heap: a process of 64 MB keeps taking 32 KB turns on
// new and old sessions, about 96 MB in all. Without a byte budget it dies of heap exhaustion; with
// SESSION_MAX_BYTES=16 MiB it lives, and V8's heap holds about what the store estimates. It runs the
// compiled store (dist/, built by the global setup) in a child with --expose-gc, to read the heap.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'

const store = fileURLToPath(new URL('../../dist/src/sessions/memory-store.js', import.meta.url))

const script = `
const { MemorySessionStore } = await import(${JSON.stringify(store)})
const KB16 = 16_000
/** A turn as the gateway keeps it: the user's text from a parsed body, the model's from a structured clone. */
const turn = (n) => [
  { role: 'user', parts: [{ text: JSON.parse(JSON.stringify(n + ' ' + 'u'.repeat(KB16))) }] },
  structuredClone({ role: 'model', parts: [{ text: n + ' ' + 'm'.repeat(KB16), thoughtSignature: 'c2lnbmF0dXJl'.repeat(8) }] })
]
const heap = () => { globalThis.gc(); return process.memoryUsage().heapUsed }
async function fill(store, sessions, turnsEach) {
  let n = 0
  for (let s = 0; s < sessions; s++) {
    const id = await store.create('ip:127.0.0.1')
    await store.commit(id, turn(n++))
    for (let t = 1; t < turnsEach; t++) {
      await store.begin(id, 'ip:127.0.0.1')
      await store.commit(id, turn(n++))
    }
  }
  return n
}
// Per turn, with room for everything: what V8 holds and what the store counts.
const roomy = new MemorySessionStore({ ttlMs: 3_600_000, max: 1_000_000, maxTurns: 100, maxBytes: 1 << 30 })
let before = heap()
const turns = await fill(roomy, 40, 10)
const perTurn = { heap: Math.round((heap() - before) / turns), estimated: Math.round(roomy.bytes / turns) }
await roomy.close()
// Past the heap, within the budget.
const maxBytes = 16 << 20
const bounded = new MemorySessionStore({ ttlMs: 3_600_000, max: 1_000_000, maxTurns: 100, maxBytes })
before = heap()
const offered = await fill(bounded, 300, 10)
const held = heap() - before
console.log(JSON.stringify({ perTurn, offered, held, estimated: bounded.bytes, sessions: bounded.size, maxBytes }))
`

test('a 64 MB heap takes 96 MB of turns: the budget evicts, and the heap holds about what the store counts', () => {
  const child = spawnSync(process.execPath, ['--max-old-space-size=64', '--expose-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 50_000
  })
  expect(child.stderr).not.toMatch(/heap out of memory/i)
  expect(child.status).toBe(0)
  const result = JSON.parse(child.stdout.trim().split('\n').at(-1)!)
  console.log(`bytes per 32 KB turn in memory: ${JSON.stringify(result.perTurn)}; held ${result.held} for ${result.estimated} estimated`)
  expect(result.estimated).toBeLessThanOrEqual(result.maxBytes)
  // The estimate is an upper bound of what V8 holds for the sessions, give or take the heap's own noise.
  expect(result.perTurn.estimated).toBeGreaterThanOrEqual(result.perTurn.heap)
  expect(result.held).toBeLessThanOrEqual(result.maxBytes * 1.1)
})
