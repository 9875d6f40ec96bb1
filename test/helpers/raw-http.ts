// HTTP/1.1 written byte for byte on a socket: request targets and framing that fetch would
// normalise or refuse to send (absolute-form, %-escapes, broken request lines, slow bodies).
import { connect } from 'node:net'

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
  json: any
}

/** Sends `head` (and then each of `parts`, as they are written) and reads until the server closes. */
export async function rawRequest(url: string, head: string, parts: Array<string | (() => Promise<void>)> = []): Promise<RawResponse> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  const chunks: Buffer[] = []
  // Done when the server closes, or when the response is whole (an SSE stream keeps the connection open).
  const closed = new Promise<void>((resolve) => {
    socket.on('data', (b: Buffer) => {
      chunks.push(b)
      if (whole(Buffer.concat(chunks).toString('latin1'))) {
        socket.destroy()
        resolve()
      }
    })
    socket.on('close', () => resolve())
    socket.on('error', () => resolve())
  })
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  socket.write(head)
  for (const part of parts) {
    if (socket.destroyed) break
    if (typeof part === 'string') socket.write(part)
    else await part()
  }
  await closed
  return parse(Buffer.concat(chunks).toString('utf8'))
}

function whole(text: string): boolean {
  const split = text.indexOf('\r\n\r\n')
  if (split < 0) return false
  const head = text.slice(0, split).toLowerCase()
  if (/\r\ntransfer-encoding: *chunked/.test(head)) return text.endsWith('\r\n0\r\n\r\n')
  const length = /\r\ncontent-length: *(\d+)/.exec(head)?.[1]
  return length !== undefined && text.length - split - 4 >= Number(length)
}

function parse(text: string): RawResponse {
  const split = text.indexOf('\r\n\r\n')
  const [statusLine = '', ...lines] = text.slice(0, split < 0 ? text.length : split).split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim()
  }
  let body = split < 0 ? '' : text.slice(split + 4)
  if (headers['transfer-encoding'] === 'chunked') body = unchunk(body)
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    json = undefined
  }
  return { status: Number(statusLine.split(' ')[1] ?? 0), headers, body, json }
}

function unchunk(body: string): string {
  let out = ''
  let rest = body
  for (;;) {
    const eol = rest.indexOf('\r\n')
    const size = parseInt(rest.slice(0, eol), 16)
    if (!(size > 0)) return out
    out += rest.slice(eol + 2, eol + 2 + size)
    rest = rest.slice(eol + 2 + size + 2)
  }
}

/** A request with a JSON body, Connection: close. */
export function rawJson(method: string, target: string, body: string | undefined, headers: Record<string, string> = {}): string {
  const lines = [`${method} ${target} HTTP/1.1`, 'host: 127.0.0.1', 'connection: close']
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`)
  if (body !== undefined) lines.push('content-type: application/json', `content-length: ${Buffer.byteLength(body)}`)
  return `${lines.join('\r\n')}\r\n\r\n${body ?? ''}`
}
