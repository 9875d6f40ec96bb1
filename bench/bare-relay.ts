// The floor a Node relay sets, for bench:modes `bare`: node:http in, undici.request out,
// eventsource-parser, JSON.parse per chunk, one write per chunk, the gateway's chunk and done events.
// No isolation, deadlines, retries, backpressure or validation: a reference, never a product.
import { createServer, type ServerResponse } from 'node:http'
import { StringDecoder } from 'node:string_decoder'
import { createParser } from 'eventsource-parser'
import { Agent, request } from 'undici'

const upstream = `${process.env.UPSTREAM_URL}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`
const dispatcher = new Agent({ connections: 8_192, headersTimeout: 0, bodyTimeout: 0 })
type Chunk = { candidates?: Array<{ content?: { parts?: Array<{ text?: string }> } }> }

const server = createServer((req, res) => {
  if (req.method !== 'POST') return void res.writeHead(404).end()
  let body = ''
  req.setEncoding('utf8')
  req.on('data', (s: string) => (body += s))
  req.on('end', () => void relay(body, res))
})

async function relay(body: string, res: ServerResponse): Promise<void> {
  const { message } = JSON.parse(body) as { message: string }
  const up = await request(upstream, {
    method: 'POST',
    dispatcher,
    headers: { 'content-type': 'application/json', 'x-goog-api-key': 'bench' },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: message }] }] })
  })
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  let id = 0
  const parser = createParser({
    onEvent: (event) => {
      const text = (JSON.parse(event.data) as Chunk).candidates?.[0]?.content?.parts?.[0]?.text
      if (text) res.write(`id: ${++id}\nevent: chunk\ndata: ${JSON.stringify({ text })}\n\n`)
    }
  })
  const decoder = new StringDecoder('utf8')
  for await (const buffer of up.body) parser.feed(decoder.write(buffer as Buffer))
  res.end('event: done\ndata: {}\n\n')
}
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log(`bare relay listening on http://127.0.0.1:${process.env.PORT}`))
process.once('SIGTERM', () => process.exit(0))
