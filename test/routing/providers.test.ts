// The providers beside AI Studio, each against real HTTP: Vertex AI with a service-account key and a
// token endpoint, an OpenAI-compatible local server (tools and reasoning both ways), and no secret
// in any log line, error body or metric.
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { expect, test } from 'vitest'
import type { Simulator } from '../../src/simulator/index.js'
import { postChat, replyText, terminal, type ChatResult } from '../helpers/sse.js'
import { fleet, serviceAccountFile, upstreamsFile } from '../helpers/upstreams.js'

const f = fleet()
const sim = () => f.sim({ tokens: 5 })
const gateway = f.gateway
const last = async (s: Simulator) => (await (await fetch(`${s.url}/__sim/last`)).json()) as { path: string; body: any }
const eventsOf = (r: ChatResult, name: string) => r.events.filter((e) => e.event === name)
const tools = [
  { name: 'get_time', description: 'The time in a zone', parameters: { type: 'object', properties: { zone: { type: 'string' } } } }
]

test('a Vertex AI deployment authenticates with a service-account key at its token_uri, once per worker, and calls its region', async () => {
  const s = await sim()
  const credentialsFile = serviceAccountFile(mkdtempSync(join(tmpdir(), 'sa-')), `${s.url}/token`)
  const g = await gateway({
    POOL_MIN_THREADS: '1',
    POOL_MAX_THREADS: '1',
    UPSTREAMS_FILE: upstreamsFile({
      deployments: [
        {
          id: 'vertex-br',
          provider: 'vertex',
          alias: 'chat',
          model: 'gemini-2.5-flash',
          project: 'citizens-prod',
          location: 'southamerica-east1',
          credentialsFile,
          baseUrl: s.url
        }
      ]
    })
  })
  for (let i = 0; i < 3; i++) {
    const r = await postChat(g.url, { message: `hola ${i}` })
    expect(terminal(r).map((e) => e.event)).toEqual(['done'])
    expect(r.events[0]!.json).toMatchObject({ model: 'chat', deployment: 'vertex-br' })
    expect(replyText(r).length).toBeGreaterThan(0)
  }
  expect(s.stats().tokensIssued).toBe(1)
  expect((await last(s)).path).toBe(
    '/v1/projects/citizens-prod/locations/southamerica-east1/publishers/google/models/gemini-2.5-flash:streamGenerateContent'
  )
})

test('an OpenAI-compatible server serves /api/chat and /v1, with tools, results and reasoning', async () => {
  const s = await sim()
  const g = await gateway({
    UPSTREAMS_FILE: upstreamsFile({
      deployments: [
        { id: 'vllm-local', provider: 'openai', alias: 'local', model: 'llama-3.1-8b', baseUrl: `${s.url}/v1`, apiKey: 'sk-local-secret' }
      ]
    })
  })
  // /api/chat: a call, its result, then text; thoughts relayed when asked for.
  const first = await postChat(g.url, { message: 'what time is it? [[sim:tools=get_time]]', tools })
  const calls = eventsOf(first, 'tool_call').map((e) => e.json)
  expect(calls).toEqual([{ id: expect.any(String), name: 'get_time', args: { zone: expect.any(String) } }])
  expect(terminal(first)[0]!.json).toMatchObject({ toolCalls: 1 })
  const sent = await last(s)
  expect(sent.path).toBe('/v1/chat/completions')
  expect(sent.body).toMatchObject({ model: 'llama-3.1-8b', stream: true, tools: [{ type: 'function', function: { name: 'get_time' } }] })

  const second = await postChat(g.url, {
    sessionId: first.events[0]!.json.sessionId,
    tools,
    toolResults: [{ id: calls[0].id, name: 'get_time', result: '09:30' }]
  })
  expect(terminal(second).map((e) => e.event)).toEqual(['done'])
  expect(replyText(second).length).toBeGreaterThan(0)
  const replayed = (await last(s)).body.messages as any[]
  expect(replayed.map((m) => m.role)).toEqual(['user', 'assistant', 'tool'])
  expect(replayed[1].tool_calls[0]).toMatchObject({ id: calls[0].id, function: { name: 'get_time' } })
  expect(replayed[2]).toMatchObject({ tool_call_id: calls[0].id, content: JSON.stringify({ result: '09:30' }) })

  const thinking = await postChat(g.url, { message: 'think [[sim:think=2]]', history: [], thinking: { include: true } })
  expect(eventsOf(thinking, 'thought')).toHaveLength(2)
  expect(terminal(thinking)[0]!.json.usage.thoughtTokens).toBeGreaterThan(0)

  // /v1 through the official client: tool_calls out, streamed and not.
  const client = new OpenAI({ apiKey: 'unused', baseURL: `${g.url}/v1`, maxRetries: 0 })
  const openAiTools = [{ type: 'function' as const, function: { name: 'get_time', parameters: tools[0]!.parameters } }]
  const completion = await client.chat.completions.create({
    model: 'local',
    messages: [{ role: 'user', content: 'time? [[sim:tools=get_time]]' }],
    tools: openAiTools
  })
  expect(completion.choices[0]!.finish_reason).toBe('tool_calls')
  const call = completion.choices[0]!.message.tool_calls![0]!
  expect(call.type).toBe('function')
  expect(JSON.parse((call as { function: { arguments: string } }).function.arguments)).toEqual({ zone: expect.any(String) })
  const stream = await client.chat.completions.create({
    model: 'local',
    messages: [{ role: 'user', content: 'time again? [[sim:tools=get_time]]' }],
    tools: openAiTools,
    stream: true
  })
  let name = ''
  for await (const chunk of stream) name += chunk.choices[0]?.delta.tool_calls?.[0]?.function?.name ?? ''
  expect(name).toBe('get_time')
})

test("an OpenAI-compatible server's errors map to the gateway's codes: a 429 with its Retry-After, a 5xx", async () => {
  const s = await sim()
  const g = await gateway({
    UPSTREAMS_FILE: upstreamsFile({
      deployments: [{ id: 'vllm-local', provider: 'openai', alias: 'local', model: 'm', baseUrl: `${s.url}/v1` }]
    })
  })
  const limited = await postChat(g.url, { message: 'busy [[sim:status=429, retry-delay=2000]]', history: [] })
  expect(terminal(limited)[0]!.json).toMatchObject({ code: 'upstream_rate_limited', retryAfterMs: 2000 })
  const broken = await postChat(g.url, { message: 'broken [[sim:status=500]]', history: [] })
  expect(terminal(broken)[0]!.json).toMatchObject({ code: 'upstream_error', retryable: true })
  const cut = await postChat(g.url, { message: 'cut [[sim:fail-after=2]]', history: [] })
  expect(eventsOf(cut, 'chunk')).toHaveLength(2)
  expect(terminal(cut)[0]!.json).toMatchObject({ code: 'upstream_error' })
  const dropped = await postChat(g.url, { message: 'dropped [[sim:drop-after=2]]', history: [] })
  expect(eventsOf(dropped, 'chunk')).toHaveLength(2)
  expect(terminal(dropped)[0]!.json).toMatchObject({ code: 'upstream_unavailable' })
})

test('an OpenAI-compatible stream that ends before [DONE] was cut: upstream_unavailable, never done, on every dialect', async () => {
  // A server that closes its body cleanly after two deltas, with no finish_reason and no [DONE].
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    for (const text of ['Half', ' a reply']) res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: text } }] })}\n\n`)
    res.end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const { port } = server.address() as AddressInfo
    const g = await gateway({
      UPSTREAM_RETRIES: '0',
      UPSTREAMS_FILE: upstreamsFile({
        deployments: [{ id: 'cut', provider: 'openai', alias: 'local', model: 'm', baseUrl: `http://127.0.0.1:${port}/v1` }]
      })
    })
    const streamed = await postChat(g.url, { message: 'hi' })
    expect(eventsOf(streamed, 'chunk')).toHaveLength(2)
    expect(terminal(streamed).map((e) => e.json.code)).toEqual(['upstream_unavailable'])
    const json = await fetch(`${g.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'local', messages: [{ role: 'user', content: 'hi' }] })
    })
    expect(json.status).toBe(503)
    expect(((await json.json()) as { error: { code: string } }).error.code).toBe('upstream_unavailable')
  } finally {
    server.close()
  }
})

test('no key, private key or token reaches a log line, a response or /metrics', async () => {
  const s = await sim()
  const credentialsFile = serviceAccountFile(mkdtempSync(join(tmpdir(), 'sa-')), `${s.url}/token`)
  const studioKey = 'AIzaSy-studio-secret-0123456789'
  const envKey = 'AIzaSy-env-secret-9876543210'
  const localKey = 'sk-local-secret-5555'
  const g = await gateway({
    LOG_LEVEL: 'trace',
    STUDIO_B_KEY: envKey,
    UPSTREAMS_FILE: upstreamsFile({
      deployments: [
        { id: 'studio-a', provider: 'gemini', alias: 'chat', model: 'gemini-2.5-flash', apiKey: studioKey, baseUrl: s.url },
        { id: 'studio-b', provider: 'gemini', alias: 'chat', model: 'gemini-2.5-flash', apiKeyEnv: 'STUDIO_B_KEY', baseUrl: s.url },
        {
          id: 'vertex',
          provider: 'vertex',
          alias: 'regional',
          model: 'gemini-2.5-flash',
          project: 'p',
          location: 'us-central1',
          credentialsFile,
          baseUrl: s.url
        },
        { id: 'local', provider: 'openai', alias: 'local', model: 'm', baseUrl: `${s.url}/v1`, apiKey: localKey }
      ]
    })
  })
  const responses: string[] = []
  for (const model of ['chat', 'regional', 'local']) {
    for (const message of ['hello', 'fail [[sim:status=403]]', 'cut [[sim:drop-after=1]]'])
      responses.push((await postChat(g.url, { message, model })).raw)
  }
  responses.push(await (await fetch(`${g.url}/metrics`)).text())
  const privateKey = (JSON.parse((await import('node:fs')).readFileSync(credentialsFile, 'utf8')) as { private_key: string }).private_key
  const keyLine = privateKey.split('\n')[1]!
  const output = [...g.logs.map((l) => JSON.stringify(l)), ...responses].join('\n')
  expect(output).toContain('chat turn')
  for (const secret of [studioKey, envKey, localKey, keyLine, 'ya29.sim-']) expect(output).not.toContain(secret)
})
