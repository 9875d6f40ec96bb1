// What the README promises exists, and what exists is in the README.
import { readFileSync } from 'node:fs'
import { expect, test } from 'vitest'
import { errorCodes } from '../src/errors.js'
import { envProperties, loadConfig } from '../src/config.js'
import { chatBodySchema } from '../src/routes/chat-schema.js'
import { GATEWAY_EVENTS } from '../src/wire/gateway-events.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
const envExample = readFileSync(new URL('../.env.example', import.meta.url), 'utf8')

/** The first column of the Markdown table under `heading`, backticks removed. */
function tableKeys(heading: string): string[] {
  const section = readme.split(heading)[1]!.split('\n## ')[0]!.split('\n### ')[0]!
  return section
    .split('\n')
    .filter((l) => /^\| `[^`]+` \|/.test(l))
    .map((l) => /^\| `([^`]+)`/.exec(l)![1]!)
}

test('every error code is documented, and every documented code exists with the documented status', () => {
  const documented = tableKeys('### Error codes')
  expect(new Set(documented)).toEqual(new Set(Object.keys(errorCodes)))
  for (const line of readme.split('\n').filter((l) => /^\| `[a-z_]+` \| \d{3}/.test(l))) {
    const [, code, status] = /^\| `([a-z_]+)` \| (\d{3})/.exec(line)!
    expect(errorCodes[code as keyof typeof errorCodes].status, code).toBe(Number(status))
  }
})

test('every environment variable is in the README and in .env.example, and nothing else is', () => {
  const names = Object.keys(envProperties)
  expect(new Set(tableKeys('## Configuration'))).toEqual(new Set(names))
  const listed = envExample
    .split('\n')
    .filter((l) => /^[A-Z_]+=/.test(l))
    .map((l) => l.split('=')[0])
  expect(new Set(listed)).toEqual(new Set(names))
})

/** The first column of the first Markdown table after the line `intro`. */
function tableAfter(intro: string): string[] {
  const rest = readme.slice(readme.indexOf(`\n${intro}\n`) + intro.length + 2)
  const table = rest.slice(rest.indexOf('\n|')).split('\n\n')[0]!
  return table
    .split('\n')
    .filter((l) => /^\| `[^`]+` \|/.test(l))
    .map((l) => /^\| `([^`]+)`/.exec(l)![1]!)
}

test('every field of the /api/chat body is documented, and nothing else', () => {
  const fields = Object.keys(chatBodySchema(loadConfig({})).properties)
  expect(new Set(tableAfter('Body (JSON, `content-type: application/json`; unknown fields are refused):'))).toEqual(new Set(fields))
})

test('every event of a stream is documented, and nothing else', () => {
  expect(tableAfter('Events:')).toEqual([...GATEWAY_EVENTS])
})
