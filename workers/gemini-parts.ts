// Gemini's response chunks as the gateway reads them, one stream at a time: the parts of the model's
// turn (thought text left out, signatures kept where they came), thought text apart, function calls
// complete (Vertex streams a call's arguments as `partialArgs` over several chunks, `willContinue`
// until the call ends), usage and the finish. The same reading for both readers (gateway, sdk).
import type { GenerateContentResponse, Part as GeminiPart, PartialArg } from '@google/genai'
import type { Part, Usage } from '../src/protocol.js'

export interface UpstreamPiece {
  /** Parts this chunk completed, in order; a streamed call appears once, when its last piece arrives. */
  parts: Part[]
  /** Thought summary text in this chunk. */
  thought: string
  finishReason?: string
  usage?: Usage
  blockReason?: string
}

type Chunk = Pick<GenerateContentResponse, 'candidates' | 'usageMetadata' | 'promptFeedback'>
type Args = Record<string, unknown>

interface OpenCall {
  name: string
  id: string | undefined
  args: Args
  signature: string | undefined
  /** JSON paths whose string value continues in the next partialArg (`willContinue`). */
  continuing: Set<string>
}

export class PartReader {
  private open: OpenCall | undefined

  read(chunk: Chunk): UpstreamPiece {
    const candidate = chunk.candidates?.[0]
    const piece: UpstreamPiece = { parts: [], thought: '' }
    for (const part of candidate?.content?.parts ?? []) this.part(part, piece)
    const usage = usageOf(chunk.usageMetadata)
    if (usage) piece.usage = usage
    if (candidate?.finishReason) piece.finishReason = candidate.finishReason
    if (chunk.promptFeedback?.blockReason) piece.blockReason = chunk.promptFeedback.blockReason
    return piece
  }

  /** A call still open when the stream ended (its terminal chunk never came): complete as it stands. */
  end(): Part[] {
    const open = this.open
    this.open = undefined
    return open ? [callPart(open)] : []
  }

  private part(part: GeminiPart, piece: UpstreamPiece): void {
    if (part.functionCall) {
      this.call(part, piece)
      return
    }
    // Not `response.text`: it walks every part and warns on non-text parts, per chunk.
    if (part.thought === true) {
      if (typeof part.text === 'string') piece.thought += part.text
      // The thought is not kept; its signature is, where it came.
      if (part.thoughtSignature) piece.parts.push({ text: '', thoughtSignature: part.thoughtSignature })
      return
    }
    piece.parts.push(part as Part)
  }

  private call(part: GeminiPart, piece: UpstreamPiece): void {
    const fc = part.functionCall ?? {}
    // A named part while a call is open starts the next one: the open one ended without its terminal part.
    if (this.open && fc.name) piece.parts.push(...this.end())
    if (!this.open) {
      if (!fc.name) return // a terminal or stray part with nothing open
      this.open = { name: fc.name, id: fc.id, args: { ...fc.args }, signature: part.thoughtSignature, continuing: new Set() }
    } else if (fc.args) {
      Object.assign(this.open.args, fc.args)
    }
    this.open.signature ??= part.thoughtSignature
    for (const arg of fc.partialArgs ?? []) applyPartialArg(this.open, arg)
    if (fc.willContinue !== true) piece.parts.push(...this.end())
  }
}

function callPart(call: OpenCall): Part {
  const functionCall = { name: call.name, args: call.args, ...(call.id ? { id: call.id } : {}) }
  return call.signature ? { functionCall, thoughtSignature: call.signature } : { functionCall }
}

function usageOf(meta: GenerateContentResponse['usageMetadata']): Usage | undefined {
  // Vertex sends usage with only a trafficType until its last chunk: nothing to count yet.
  if (!meta || (meta.promptTokenCount === undefined && meta.totalTokenCount === undefined)) return undefined
  const promptTokens = meta.promptTokenCount ?? 0
  const outputTokens = meta.candidatesTokenCount ?? 0
  const usage: Usage = { promptTokens, outputTokens, totalTokens: meta.totalTokenCount ?? promptTokens + outputTokens }
  if (meta.thoughtsTokenCount) usage.thoughtTokens = meta.thoughtsTokenCount
  if (meta.cachedContentTokenCount) usage.cachedTokens = meta.cachedContentTokenCount
  return usage
}

/** One streamed argument: a value at a JSON path (RFC 9535: `$.a.b[0]`, `$['a b']`); strings may come in pieces. */
function applyPartialArg(call: OpenCall, arg: PartialArg): void {
  const path = arg.jsonPath
  if (!path) return
  let value: unknown
  if (arg.stringValue !== undefined) value = arg.stringValue
  else if (arg.numberValue !== undefined) value = arg.numberValue
  else if (arg.boolValue !== undefined) value = arg.boolValue
  else if (arg.nullValue !== undefined) value = null
  else return
  const keys = pathKeys(path)
  if (!keys) return
  const append = typeof value === 'string' && call.continuing.has(path)
  setAt(call.args, keys, value, append)
  if (arg.willContinue === true) call.continuing.add(path)
  else call.continuing.delete(path)
}

function pathKeys(path: string): Array<string | number> | undefined {
  if (!path.startsWith('$')) return undefined
  const keys: Array<string | number> = []
  const step = /\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\["((?:[^"\\]|\\.)*)"\]/y
  step.lastIndex = 1
  while (step.lastIndex < path.length) {
    const match = step.exec(path)
    if (!match) return undefined
    const [, name, index, single, double] = match
    keys.push(index !== undefined ? Number(index) : (name ?? single ?? double ?? '').replace(/\\(.)/g, '$1'))
  }
  return keys
}

function setAt(root: Args, keys: Array<string | number>, value: unknown, append: boolean): void {
  let node: Record<string | number, unknown> = root
  keys.forEach((key, i) => {
    if (i === keys.length - 1) {
      const previous = node[key]
      node[key] = append && typeof previous === 'string' ? previous + (value as string) : value
      return
    }
    const next = node[key]
    if (typeof next !== 'object' || next === null) node[key] = typeof keys[i + 1] === 'number' ? [] : {}
    node = node[key] as Record<string | number, unknown>
  })
}
