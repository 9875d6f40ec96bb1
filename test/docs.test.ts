// What the documentation promises exists, and what exists is documented: README.md is the front
// page; the reference lives in docs/ (the API, configuration, operations, security).
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { expect, test } from 'vitest'
import { errorCodes } from '../src/errors.js'
import { envProperties, loadConfig } from '../src/config.js'
import { chatBodySchema } from '../src/routes/chat-schema.js'
import { GATEWAY_EVENTS } from '../src/wire/gateway-events.js'

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')
const api = read('docs/api.md')
const configuration = read('docs/configuration.md')
const envExample = read('.env.example')

/** The first column of the Markdown table under `heading` in `doc`, backticks removed. */
function tableKeys(doc: string, heading: string): string[] {
  const section = doc.split(heading)[1]!.split('\n## ')[0]!.split('\n### ')[0]!
  return section
    .split('\n')
    .filter((l) => /^\| `[^`]+` \|/.test(l))
    .map((l) => /^\| `([^`]+)`/.exec(l)![1]!)
}

test('every error code is documented, and every documented code exists with the documented status', () => {
  const documented = tableKeys(api, '## Error codes')
  expect(new Set(documented)).toEqual(new Set(Object.keys(errorCodes)))
  for (const line of api.split('\n').filter((l) => /^\| `[a-z_]+` \| \d{3}/.test(l))) {
    const [, code, status] = /^\| `([a-z_]+)` \| (\d{3})/.exec(line)!
    expect(errorCodes[code as keyof typeof errorCodes].status, code).toBe(Number(status))
  }
})

test('every environment variable is in docs/configuration.md and in .env.example, and nothing else is', () => {
  const names = Object.keys(envProperties)
  expect(new Set(tableKeys(configuration, '# Configuration'))).toEqual(new Set(names))
  const listed = envExample
    .split('\n')
    .filter((l) => /^[A-Z_]+=/.test(l))
    .map((l) => l.split('=')[0])
  expect(new Set(listed)).toEqual(new Set(names))
})

/** The first column of the first Markdown table after the line `intro` in the API document. */
function tableAfter(intro: string): string[] {
  const rest = api.slice(api.indexOf(`\n${intro}\n`) + intro.length + 2)
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

test('every relative link of the README and docs/ names a file that exists, and a heading in it', () => {
  const docs = ['README.md', 'bench/README.md', ...readdirSync(new URL('../docs', import.meta.url)).map((f) => `docs/${f}`)]
  const anchors = (text: string) =>
    new Set(
      text
        .split('\n')
        .filter((l) => /^#+ /.test(l))
        .map((l) =>
          l
            .replace(/^#+ /, '')
            .toLowerCase()
            .replace(/[^\w\- ]/g, '')
            .replaceAll(' ', '-')
        )
    )
  let links = 0
  for (const doc of docs) {
    const dir = doc.includes('/') ? doc.slice(0, doc.lastIndexOf('/') + 1) : ''
    for (const [, target] of read(doc).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue
      links++
      const [file, anchor] = target!.split('#')
      const path = file ? new URL(`../${dir}${file}`, import.meta.url) : new URL(`../${doc}`, import.meta.url)
      expect(existsSync(path), `${doc}: ${target}`).toBe(true)
      if (anchor) expect(anchors(readFileSync(path, 'utf8')).has(anchor), `${doc}: ${target}`).toBe(true)
    }
  }
  expect(links).toBeGreaterThan(10)
})
