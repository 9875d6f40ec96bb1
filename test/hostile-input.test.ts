// Thousands of malformed and hostile requests: only documented 4xx JSON errors before admission,
// well-framed SSE after, never a 5xx, never a crash, and a normal turn still works afterwards.
import fc from 'fast-check'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { errorCodes } from '../src/errors.js'
import { GATEWAY_EVENTS } from '../src/wire/gateway-events.js'
import { readSse, terminal, postChat } from './helpers/sse.js'
import { startGateway, type TestGateway } from './helpers/gateway.js'

let gw: TestGateway
beforeAll(async () => {
  gw = await startGateway({ BODY_LIMIT_BYTES: '65536', HISTORY_MAX_TURNS: '20' }, { tokens: 3 })
})
afterAll(async () => {
  await gw?.close()
})

const nasty = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom(
    '\n\ndata: {"text":"injected"}\n\n',
    'event: done\ndata: {}\n\n',
    '\u0000\u0001\u001f',
    '\r\n\r\n',
    '\u2028\u2029',
    '"},"x":{',
    '\\',
    '\ud800'
  ),
  fc.string({ maxLength: 40 }).map((s) => `${s}\n\nevent: error\ndata: ${s}`)
)
const deep = (depth: number): unknown => (depth === 0 ? 'x' : { a: deep(depth - 1) })
const body = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.record({ message: nasty }),
  fc.record(
    {
      message: fc.oneof(nasty, fc.integer(), fc.constant(null), fc.array(fc.string())),
      sessionId: fc.oneof(fc.string({ maxLength: 140 }), fc.constant('../../etc/passwd'), fc.integer()),
      history: fc.array(fc.record({ role: fc.constantFrom('user', 'model', 'system', ''), text: nasty }), { maxLength: 25 }),
      model: fc.oneof(fc.constantFrom('gemini-2.5-flash', 'gpt-4', ''), fc.string()),
      generation: fc.record({ temperature: fc.double(), topK: fc.oneof(fc.integer(), fc.string()) }),
      extra: fc.anything()
    },
    { requiredKeys: [] }
  ),
  fc.integer({ min: 1, max: 200 }).map((d) => ({ message: 'deep', nested: deep(d) }))
)
const payload = fc.oneof(
  body.map((b) => JSON.stringify(b) ?? 'null'),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)), // invalid UTF-8 and garbage
  fc.constantFrom('{"message": "unterminated', '', '{"message":"a"}{"message":"b"}', '{"message":"' + 'x'.repeat(70_000) + '"}')
)
const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/JSON',
  ''
)

test('hostile bodies and headers get documented 4xx JSON errors or a well-framed stream, never a 5xx', async () => {
  const statuses = new Map<number, number>()
  await fc.assert(
    fc.asyncProperty(payload, contentType, fc.string({ maxLength: 40 }), async (data, type, lastEventId) => {
      const headers: Record<string, string> = { 'x-request-id': lastEventId.replace(/[^\x20-\x7e]/g, '') }
      if (type) headers['content-type'] = type
      const res = await fetch(`${gw.url}/api/chat`, { method: 'POST', headers, body: data })
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
      expect(res.status).toBeLessThan(500)
      const r = await readSse(res)
      if (res.status === 200) {
        expect(r.events[0]!.event).toBe('meta')
        expect(terminal(r)).toHaveLength(1)
        for (const line of r.raw.split('\n').filter((l) => l.startsWith('data:'))) expect(() => JSON.parse(line.slice(5))).not.toThrow()
        expect(r.events.filter((e) => !(GATEWAY_EVENTS as readonly string[]).includes(e.event))).toEqual([])
      } else {
        const code = r.body?.error?.code as keyof typeof errorCodes
        expect(Object.keys(errorCodes)).toContain(code)
        expect(errorCodes[code].status).toBe(res.status)
        expect(typeof r.body.error.message).toBe('string')
      }
    }),
    { numRuns: 2_000 }
  )
  // Both sides of the edge were exercised.
  expect(statuses.get(200)).toBeGreaterThan(10)
  expect(statuses.get(400)).toBeGreaterThan(100)
  const after = await postChat(gw.url, { message: 'still here?' })
  expect(terminal(after)[0]!.event).toBe('done')
}, 120_000)
