// A conversation in the gateway's canonical form (Gemini contents): built from a session or a
// stateless history, with the new user turn last. Tool results must answer the calls the model's
// last turn made, every one and nothing else, as Gemini requires; here that is a clear 400 at the
// edge instead of Gemini's after the quota was spent.
import { GatewayError } from '../errors.js'
import type { Content, Part } from '../protocol.js'

export interface ToolCallIn {
  id: string
  name: string
  args: Record<string, unknown>
  signature?: string
}
export interface ToolResultIn {
  id: string
  name: string
  result: unknown
}
export interface HistoryTurnIn {
  role: 'user' | 'model'
  text?: string
  toolCalls?: ToolCallIn[]
  toolResults?: ToolResultIn[]
}

const refuse = (message: string): never => {
  throw new GatewayError('bad_request', message)
}

/** A call as a model turn holds it: the signature on its part, where Gemini put it. */
export function callPart(call: ToolCallIn): Part {
  const functionCall = { name: call.name, args: call.args, id: call.id }
  return call.signature ? { functionCall, thoughtSignature: call.signature } : { functionCall }
}

/** Stateless history (text, toolCalls, toolResults per turn) as contents; each result checked against the calls before it. */
export function historyContents(history: readonly HistoryTurnIn[]): Content[] {
  const contents: Content[] = []
  history.forEach((turn, i) => {
    const where = `body/history/${i}`
    if (turn.role === 'user' && turn.toolCalls) refuse(`${where}/toolCalls: only a model turn makes calls`)
    if (turn.role === 'model' && turn.toolResults) refuse(`${where}/toolResults: only a user turn returns results`)
    const parts: Part[] = []
    if (turn.toolResults) parts.push(...answerCalls(contents.at(-1), turn.toolResults, `${where}/toolResults`))
    if (turn.text !== undefined) parts.push({ text: turn.text })
    if (turn.toolCalls) parts.push(...turn.toolCalls.map(callPart))
    if (parts.length === 0) refuse(`${where} needs text, toolCalls or toolResults`)
    contents.push({ role: turn.role, parts })
  })
  return contents
}

/** The new user turn: results of the last model turn's calls first, then the message. */
export function userContent(prior: readonly Content[], message: string | undefined, results: readonly ToolResultIn[] | undefined): Content {
  if (message === undefined && !results) refuse('body must have message, toolResults or both')
  const parts: Part[] = results ? answerCalls(prior.at(-1), results, 'body/toolResults') : []
  if (message !== undefined) parts.push({ text: message })
  return { role: 'user', parts }
}

/** functionResponse parts for `results`, which must answer exactly the calls of `turn` (the last model turn). */
export function answerCalls(turn: Content | undefined, results: readonly ToolResultIn[], where: string): Part[] {
  const calls = turn?.role === 'model' ? turn.parts.flatMap((p) => (p.functionCall ? [p.functionCall] : [])) : []
  if (calls.length === 0) refuse(`${where}: the model's last turn made no tool call to answer`)
  const answered = new Set<string>()
  const parts = results.map((result, i) => {
    const call = calls.find((c) => c.id === result.id)
    if (!call) {
      const byName = calls.some((c) => c.name === result.name)
      return refuse(
        byName
          ? `${where}/${i}/id '${result.id}' is not the id of a call`
          : `${where}/${i}/name '${result.name}' is not a tool the model called`
      )
    }
    if (call.name !== result.name) refuse(`${where}/${i}/name '${result.name}' does not match call '${result.id}' (${call.name})`)
    if (answered.has(result.id)) refuse(`${where}/${i}/id '${result.id}' is answered twice`)
    answered.add(result.id)
    // Gemini takes an object as a function's response; any other JSON value is wrapped.
    const response = isPlainObject(result.result) ? result.result : { result: result.result }
    return { functionResponse: { name: result.name, response, id: result.id } }
  })
  const unanswered = calls.filter((c) => c.id !== undefined && !answered.has(c.id))
  if (unanswered.length > 0)
    refuse(`${where} must answer every call of the model's last turn; missing ${unanswered.map((c) => `'${c.id}' (${c.name})`).join(', ')}`)
  return parts
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** Every text of the conversation, and the JSON of what is not text: what the quota counts characters of. */
export function contentTexts(contents: readonly Content[]): string[] {
  const texts: string[] = []
  for (const content of contents) {
    for (const part of content.parts) texts.push(typeof part.text === 'string' ? part.text : JSON.stringify(part))
  }
  return texts
}
