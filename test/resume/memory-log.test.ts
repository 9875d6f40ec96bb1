// The in-memory resume log: live events reach a follower filtered by the id it attached after, a
// stream of another tenant is answered as an unknown one, and RESUME_MAX_BYTES bounds what is held:
// the oldest ended streams go first (204), then the events of the oldest live one, whose resume from
// before its newest event is stream_lost, never a short replay.
import { afterEach, expect, test } from 'vitest'
import { bytesOf, MemoryStreamLog } from '../../src/resume/memory-log.js'
import type { ResumeSink } from '../../src/resume/stream-log.js'
import { gatewayFramer } from '../../src/wire/gateway-events.js'

const frame = (id: number) => gatewayFramer.chunk(id, `word ${id} `)
const frames = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => frame(from + i)).join('')
const DONE = 'event: done\ndata: {}\n\n'

/** A sink that records the ids it was sent and its terminal event. */
function recorder(): ResumeSink & { ids: number[]; terminal: string | undefined } {
  const sink = {
    ids: [] as number[],
    terminal: undefined as string | undefined,
    frames: (f: string) => sink.ids.push(...[...f.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))),
    end: (t: string) => (sink.terminal = t)
  }
  return sink
}

const logs: MemoryStreamLog[] = []
const newLog = (maxBytes?: number) => {
  const log = new MemoryStreamLog(60_000, maxBytes)
  logs.push(log)
  return log
}
afterEach(async () => {
  for (const log of logs.splice(0)) await log.close()
})

test('a follower that attached after an id ahead of the stream gets no live event up to that id again', async () => {
  const log = newLog()
  log.open('ahead-0001')
  log.append('ahead-0001', frames(1, 3), 3)
  const sink = recorder()
  await log.attach('ahead-0001', 5, sink)
  log.append('ahead-0001', frames(4, 5), 5)
  log.append('ahead-0001', frames(6, 8), 8)
  void log.end('ahead-0001', DONE, 8)
  expect(sink.ids).toEqual([6, 7, 8])
  expect(sink.terminal).toBe(DONE)
})

test('a stream bound to a tenant is unknown to every other one, live, ended and gone', async () => {
  const log = newLog()
  log.open('tenant-0001', 'key:aaaa')
  log.append('tenant-0001', frames(1, 2), 2)
  for (const other of ['key:bbbb', undefined]) expect((await log.attach('tenant-0001', 0, recorder(), other)).kind).toBe('unknown')
  expect(log.holds('tenant-0001', 'key:bbbb')).toBe(false)
  const own = recorder()
  expect((await log.attach('tenant-0001', 0, own, 'key:aaaa')).kind).toBe('attached')
  void log.end('tenant-0001', DONE, 2)
  expect(own.ids).toEqual([1, 2])
  expect((await log.attach('tenant-0001', 0, recorder(), 'key:bbbb')).kind).toBe('unknown')

  // Gone (forgotten for the byte budget): 204 for its tenant, still unknown to another.
  const tight = newLog(0)
  tight.open('tenant-0002', 'key:aaaa')
  tight.append('tenant-0002', frames(1, 1), 1)
  void tight.end('tenant-0002', DONE, 1)
  expect((await tight.attach('tenant-0002', 0, recorder(), 'key:aaaa')).kind).toBe('gone')
  expect((await tight.attach('tenant-0002', 0, recorder(), 'key:bbbb')).kind).toBe('unknown')

  // Unbound (no API keys): anyone with the id.
  log.open('open-00001')
  expect((await log.attach('open-00001', 0, recorder())).kind).toBe('attached')
})

test('over RESUME_MAX_BYTES the oldest ended streams are forgotten first (gone), newer ones still replay', async () => {
  const batch = frames(1, 10)
  // Room for three streams of one batch each, terminals included.
  const log = newLog(3 * (bytesOf(batch) + DONE.length * 2))
  for (const id of ['ended-0001', 'ended-0002', 'ended-0003', 'ended-0004']) {
    log.open(id)
    log.append(id, batch, 10)
    void log.end(id, DONE, 10)
  }
  expect(log.bytes).toBeLessThanOrEqual(3 * (bytesOf(batch) + DONE.length * 2))
  expect((await log.attach('ended-0001', 0, recorder())).kind).toBe('gone')
  for (const id of ['ended-0002', 'ended-0003', 'ended-0004']) {
    const sink = recorder()
    expect((await log.attach(id, 0, sink)).kind).toBe('attached')
    expect(sink.ids).toEqual(Array.from({ length: 10 }, (_, i) => i + 1))
    expect(sink.terminal).toBe(DONE)
  }
  // A live stream pushes the ended ones out before it loses anything.
  log.open('live-00001')
  log.append('live-00001', frames(1, 20), 20)
  log.append('live-00001', frames(21, 30), 30)
  expect((await log.attach('ended-0002', 0, recorder())).kind).toBe('gone')
  const whole = recorder()
  await log.attach('live-00001', 0, whole)
  expect(whole.ids).toHaveLength(30)
})

test('when live streams alone exceed RESUME_MAX_BYTES, the oldest drops its events: a resume from before its newest is stream_lost', async () => {
  // Room for the newer stream's two batches, not for those and the older one's.
  const budget = bytesOf(frames(1, 10)) + bytesOf(frames(11, 20)) + DONE.length * 2
  const log = newLog(budget)
  log.open('live-older')
  log.open('live-newer')
  log.append('live-older', frames(1, 10), 10)
  const follower = recorder()
  await log.attach('live-older', 0, follower)
  log.append('live-newer', frames(1, 10), 10)
  log.append('live-newer', frames(11, 20), 20) // over: the older one's events go
  expect(log.bytes).toBeLessThanOrEqual(budget)

  const late = recorder()
  expect((await log.attach('live-older', 4, late)).kind).toBe('attached')
  expect(late.ids).toEqual([])
  expect(late.terminal).toMatch(/"code":"stream_lost"/)
  expect(log.holds('live-older', undefined, 4)).toBe(false)

  // From its newest event on there is nothing to replay: it follows live, and so does the follower it had.
  const current = recorder()
  await log.attach('live-older', 10, current)
  expect(log.holds('live-older', undefined, 10)).toBe(true)
  log.append('live-older', frames(11, 12), 12)
  void log.end('live-older', DONE, 12)
  expect(current.ids).toEqual([11, 12])
  expect(current.terminal).toBe(DONE)
  expect(follower.ids).toEqual(Array.from({ length: 12 }, (_, i) => i + 1))
  expect(follower.terminal).toBe(DONE)
  // Ended, it still never replays short.
  const after = recorder()
  await log.attach('live-older', 0, after)
  expect(after.ids).toEqual([])
  expect(after.terminal).toMatch(/"code":"stream_lost"/)

  const newer = recorder()
  await log.attach('live-newer', 0, newer)
  expect(newer.ids).toHaveLength(20)
})

test('the bytes held come back to zero once every stream is forgotten', async () => {
  const log = newLog(0)
  log.open('count-0001')
  log.append('count-0001', frames(1, 3), 3)
  expect(log.bytes).toBe(0)
  void log.end('count-0001', DONE, 3)
  expect(log.bytes).toBe(0)
  const roomy = newLog()
  roomy.open('count-0002')
  roomy.append('count-0002', frames(1, 3), 3)
  expect(roomy.bytes).toBe(bytesOf(frames(1, 3)))
})
