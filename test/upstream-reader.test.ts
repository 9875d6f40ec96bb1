// The gateway's reader of Gemini's event stream (UPSTREAM_READER=gateway) must read every wire
// shape exactly as the SDK's own reader does: same pieces, same classified failure. A raw HTTP server
// sends each shape byte for byte, including the ones the simulator never produces.
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { classifyUpstreamError, createGeminiUpstream } from '../workers/gemini.js'
import type { UpstreamPiece } from '../workers/upstream.js'
import type { WireError } from '../src/protocol.js'

const chunk = (text: string, extra: object = {}) =>
  JSON.stringify({ candidates: [{ content: { parts: [{ text }], role: 'model' }, index: 0, ...extra }], responseId: 'r1' })
const last = (text: string) =>
  chunk(text, { finishReason: 'STOP' }).replace(
    /}$/,
    ',"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":2,"totalTokenCount":5}}'
  )
const sse = (...jsons: string[]) => jsons.map((j) => `data: ${j}\r\n\r\n`).join('')
const wave = Buffer.from(`data: ${chunk('héllo 🌊')}\r\n\r\n`)
const waveAt = wave.indexOf(Buffer.from('🌊')) + 2

type Write = string | Buffer
interface Shape {
  status?: number
  type?: string
  writes: Write[]
  ending?: 'end' | 'destroy'
}

const shapes: Record<string, Shape> = {
  'CRLF events, usage and finish on the last': { writes: [sse(chunk('Hel')), sse(last('lo'))] },
  'LF and CR separators, data: without a space': { writes: [`data:${chunk('a')}\n\ndata: ${chunk('b')}\r\r`, sse(last('c'))] },
  'many events in one write': { writes: [sse(chunk('1'), chunk('2'), chunk('3'), last('4'))] },
  'an event and a UTF-8 character split across writes': {
    writes: [wave.subarray(0, 9), wave.subarray(9, waveAt), wave.subarray(waveAt), sse(last('!'))]
  },
  'a thought part is not reply text': {
    writes: [
      sse(JSON.stringify({ candidates: [{ content: { parts: [{ text: 'hmm', thought: true }, { text: 'yes' }] }, finishReason: 'STOP' }] }))
    ]
  },
  'a blocked prompt: 200 with promptFeedback and no candidates': {
    writes: [sse(JSON.stringify({ promptFeedback: { blockReason: 'SAFETY' } }))]
  },
  'an event with an unknown field is no chunk': {
    writes: [`foo: bar\r\n${sse(chunk('skip'))}`, `retry: 10\r\n${sse(chunk('skip'))}`, sse(last('kept'))]
  },
  'an event: line makes the event no chunk': { writes: [`event: note\r\ndata: ${chunk('skip')}\r\n\r\n`, sse(last('kept'))] },
  'an error object sent as a chunk mid-stream (500)': {
    writes: [sse(chunk('a')), sse(JSON.stringify({ error: { code: 500, message: 'boom', status: 'INTERNAL' } }))]
  },
  'an error object sent as a chunk mid-stream (429)': {
    writes: [sse(JSON.stringify({ error: { code: 429, message: 'slow down', status: 'RESOURCE_EXHAUSTED' } }))]
  },
  'a last event cut off before its terminator': { writes: [sse(chunk('a')), `data: ${chunk('b')}`] },
  'a chunk that is not JSON': { writes: [sse(chunk('a')), 'data: {"candidates": [\r\n\r\n'] },
  'the connection dropped mid-stream': { writes: [sse(chunk('a'))], ending: 'destroy' },
  'a 429 with RetryInfo': {
    status: 429,
    type: 'application/json',
    writes: [
      JSON.stringify({
        error: {
          code: 429,
          message: 'quota',
          status: 'RESOURCE_EXHAUSTED',
          details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '1.5s' }]
        }
      })
    ]
  },
  'a 503 as JSON': {
    status: 503,
    type: 'application/json',
    writes: [JSON.stringify({ error: { code: 503, message: 'overloaded', status: 'UNAVAILABLE' } })]
  },
  'a 200 that is not an event stream': { type: 'application/json', writes: [last('x')] }
}

let server: Server
let baseUrl: string
beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req
      .setEncoding('utf8')
      .on('data', (s: string) => {
        body += s
      })
      .on('end', () => {
        const name = (JSON.parse(body) as { contents: Array<{ parts: Array<{ text: string }> }> }).contents[0]!.parts[0]!.text
        const shape = shapes[name]!
        res.writeHead(shape.status ?? 200, { 'content-type': shape.type ?? 'text/event-stream' })
        // Each write leaves on its own: the reader must put split events back together.
        const writeNext = (i: number): void => {
          if (i === shape.writes.length) {
            if (shape.ending === 'destroy') res.destroy()
            else res.end()
            return
          }
          res.write(shape.writes[i], () => setTimeout(writeNext, 5, i + 1))
        }
        writeNext(0)
      })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  server.closeAllConnections()
  server.close()
  await once(server, 'close')
})

interface Outcome {
  pieces: UpstreamPiece[]
  error?: WireError
}

async function read(reader: 'gateway' | 'sdk', name: string): Promise<Outcome> {
  const upstream = createGeminiUpstream({ id: 'test', provider: 'gemini', model: 'gemini-2.5-flash', apiKey: 'test-key', baseUrl }, reader)
  const pieces: UpstreamPiece[] = []
  try {
    for await (const piece of upstream.stream(
      { model: 'gemini-2.5-flash', contents: [{ role: 'user', parts: [{ text: name }] }] },
      new AbortController().signal
    ))
      pieces.push(piece)
    return { pieces }
  } catch (err) {
    return { pieces, error: classifyUpstreamError(err).error }
  }
}

describe('UPSTREAM_READER=gateway reads every wire shape as the SDK does', () => {
  test.each(Object.keys(shapes))('%s', async (name) => {
    const [gateway, sdk] = [await read('gateway', name), await read('sdk', name)]
    expect(gateway).toEqual(sdk)
  })

  test('the shapes above are told apart: text, finish, usage, blocks and each failure', async () => {
    expect(await read('gateway', 'an event and a UTF-8 character split across writes')).toEqual({
      pieces: [
        { parts: [{ text: 'héllo 🌊' }], thought: '' },
        { parts: [{ text: '!' }], thought: '', finishReason: 'STOP', usage: { promptTokens: 3, outputTokens: 2, totalTokens: 5 } }
      ]
    })
    expect((await read('gateway', 'an event: line makes the event no chunk')).pieces.map((p) => p.parts)).toEqual([[{ text: 'kept' }]])
    expect((await read('gateway', 'a thought part is not reply text')).pieces[0]).toEqual({
      parts: [{ text: 'yes' }],
      thought: 'hmm',
      finishReason: 'STOP'
    })
    expect((await read('gateway', 'a blocked prompt: 200 with promptFeedback and no candidates')).pieces).toEqual([
      { parts: [], thought: '', blockReason: 'SAFETY' }
    ])
    const failures = await Promise.all(
      [
        'an error object sent as a chunk mid-stream (500)',
        'an error object sent as a chunk mid-stream (429)',
        'a last event cut off before its terminator',
        'a chunk that is not JSON',
        'the connection dropped mid-stream',
        'a 429 with RetryInfo',
        'a 503 as JSON'
      ].map(async (name) => {
        const { error } = await read('gateway', name)
        return [error?.code, error?.retryable, error?.retryAfterMs]
      })
    )
    expect(failures).toEqual([
      ['upstream_error', true, undefined],
      ['upstream_rate_limited', true, undefined],
      ['upstream_error', false, undefined],
      ['upstream_error', false, undefined],
      ['upstream_unavailable', true, undefined],
      ['upstream_rate_limited', true, 1500],
      ['upstream_unavailable', true, undefined]
    ])
  })
})
