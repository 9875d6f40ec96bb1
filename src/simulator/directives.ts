import { MAX_SIM_MS, MAX_SIM_TOKENS } from './options.js'

/**
 * Per-request overrides written into the last non-model turn (earlier turns are ignored):
 * `[[sim:tokens=5]] [[sim:delay=0]]`, or several in one bracket separated by `,` or `;`:
 * `[[sim:tokens=5, delay=0; ttft=0]]`. Names are lower-case, spaces around names and values are
 * allowed, values are non-negative integers; unknown names and out-of-range values are ignored, and a
 * later occurrence overrides an earlier one.
 *
 * - `tokens=N` (0–100000), `delay=MS`, `ttft=MS`, `retry-delay=MS` (0–3600000): override the options
 * - `status=CODE` (400–599): that HTTP error with Gemini's JSON body, no stream
 * - `fail-after=N`: N chunks, then an error chunk (500 INTERNAL), then the end
 * - `drop-after=N`: N chunks, then the socket is destroyed
 * - `hang`: 200 headers, then silence until the client goes away
 * - `block`: one event with `promptFeedback.blockReason: "SAFETY"` and no candidates
 * - `safety`: half the chunks, then one with `finishReason: "SAFETY"` and no content
 * - `times=N`: status, fail-after, drop-after, hang, key-suspended and bad-key apply only to the first N identical request bodies
 * - `tools=a,b`: the reply is one functionCall part per named declared tool (parallel when several),
 *   unless the last turn answers earlier calls (then it is text)
 * - `think=N` (0–1000): N thought chunks before the answer when thinkingConfig.includeThoughts is set;
 *   their tokens are counted in thoughtsTokenCount either way
 * - `finish-every-chunk`: finishReason STOP on every chunk, as Gemini 1.x streamed
 * - `key-suspended`: Gemini's 403 PERMISSION_DENIED for a suspended key, quoting the caller's key
 *   (`Consumer 'api_key:…' has been suspended.`); on the OpenAI wire, the same message as a 403
 * - `bad-key`: a refused key: Gemini's 400 API_KEY_INVALID, or on the OpenAI wire a 401 `invalid_api_key`
 *   quoting the caller's key masked (`Incorrect API key provided: sk-abc1****wxyz`)
 *
 * Precedence: key-suspended, then bad-key, then status, then hang, then block; among fail-after, drop-after and safety the earliest cut
 * wins. A cut at or past the end of the reply still replaces the last chunk's finishReason.
 */
export interface Directives {
  tokens?: number
  delayMs?: number
  ttftMs?: number
  retryDelayMs?: number
  status?: number
  failAfter?: number
  dropAfter?: number
  times?: number
  hang?: boolean
  block?: boolean
  safety?: boolean
  finishEveryChunk?: boolean
  keySuspended?: boolean
  badKey?: boolean
  think?: number
  tools?: string[]
}

const DIRECTIVE = /\[\[sim:([^\]]*)\]\]/g

type FlagName = 'hang' | 'block' | 'safety' | 'finishEveryChunk' | 'keySuspended' | 'badKey'
type NumericName = Exclude<keyof Directives, FlagName | 'tools'>
const FLAGS = new Map<string, FlagName>([
  ['hang', 'hang'],
  ['block', 'block'],
  ['safety', 'safety'],
  ['finish-every-chunk', 'finishEveryChunk'],
  ['key-suspended', 'keySuspended'],
  ['bad-key', 'badKey']
])
const TOOL_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/

// name → [field, min, max]; a Map so names like `constructor` cannot hit Object.prototype.
const NUMERIC = new Map<string, [NumericName, number, number]>([
  ['tokens', ['tokens', 0, MAX_SIM_TOKENS]],
  ['delay', ['delayMs', 0, MAX_SIM_MS]],
  ['ttft', ['ttftMs', 0, MAX_SIM_MS]],
  ['retry-delay', ['retryDelayMs', 0, MAX_SIM_MS]],
  ['status', ['status', 400, 599]],
  ['fail-after', ['failAfter', 0, Number.MAX_SAFE_INTEGER]],
  ['drop-after', ['dropAfter', 0, Number.MAX_SAFE_INTEGER]],
  ['times', ['times', 0, Number.MAX_SAFE_INTEGER]],
  ['think', ['think', 0, 1_000]]
])

/** Applies one `name` or `name=value`; returns whether it opened a list that bare names may continue (tools). */
function apply(directives: Directives, name: string, raw: string | undefined, listOpen: boolean): boolean {
  if (raw === undefined) {
    const flag = FLAGS.get(name)
    if (flag) directives[flag] = true
    else if (listOpen && TOOL_NAME.test(name)) directives.tools?.push(name)
    return listOpen && !flag
  }
  if (name === 'tools') {
    directives.tools = TOOL_NAME.test(raw) ? [raw] : []
    return true
  }
  const spec = NUMERIC.get(name)
  const value = raw === '' ? NaN : Number(raw)
  if (spec && Number.isSafeInteger(value) && value >= spec[1] && value <= spec[2]) directives[spec[0]] = value
  return false
}

export function parseDirectives(text: string): Directives {
  const directives: Directives = {}
  if (!text.includes('[[sim:')) return directives
  for (const [, list = ''] of text.matchAll(DIRECTIVE)) {
    // `tools=a,b`: the names after the first continue the list until a `name=value` or a `;`.
    let listOpen = false
    for (const [, item = '', separator] of list.matchAll(/([^,;]*)([,;]?)/g)) {
      if (item === '' && separator === '') continue
      const eq = item.indexOf('=')
      const name = (eq < 0 ? item : item.slice(0, eq)).trim()
      listOpen = apply(directives, name, eq < 0 ? undefined : item.slice(eq + 1).trim(), listOpen) && separator !== ';'
    }
  }
  return directives
}

/** Whether the directives ask for a failure that `times=N` limits. */
export const hasFailure = (d: Directives): boolean =>
  d.status !== undefined ||
  d.failAfter !== undefined ||
  d.dropAfter !== undefined ||
  d.hang === true ||
  d.keySuspended === true ||
  d.badKey === true
