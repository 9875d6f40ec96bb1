// Function calls the simulator makes: arguments generated from the declared schema, deterministic
// for a given request, and the opaque thought signatures Gemini attaches to them.
import { createHash } from 'node:crypto'
import { isObject, type JsonObject } from './request.js'
import type { Random } from './text.js'

/** Deep enough for any schema a client sends; a self-referencing one stops here. */
const MAX_DEPTH = 8

/** A value that satisfies `schema` (JSON Schema or Gemini's OpenAPI subset, type names in either case). */
export function valueFor(schema: unknown, random: Random, depth = 0): unknown {
  if (!isObject(schema)) return random.word()
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[random.next() % schema.enum.length]
  const variants = schema.anyOf ?? schema.oneOf
  if (Array.isArray(variants) && variants.length > 0) return valueFor(variants[0], random, depth + 1)
  const declared: unknown = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type
  const type = typeof declared === 'string' ? declared.toLowerCase() : isObject(schema.properties) ? 'object' : 'string'
  switch (type) {
    case 'integer':
      return bounded(schema, random.next() % 100)
    case 'number':
      return bounded(schema, (random.next() % 10_000) / 100)
    case 'boolean':
      return random.next() % 2 === 0
    case 'null':
      return null
    case 'array':
      return depth >= MAX_DEPTH ? [] : [valueFor(schema.items, random, depth + 1)]
    case 'object':
      return depth >= MAX_DEPTH ? {} : objectFor(schema, random, depth)
    default:
      return `${random.word()} ${random.word()}`
  }
}

function bounded(schema: JsonObject, value: number): number {
  const min = typeof schema.minimum === 'number' ? schema.minimum : undefined
  const max = typeof schema.maximum === 'number' ? schema.maximum : undefined
  if (min !== undefined && value < min) return min
  if (max !== undefined && value > max) return max
  return value
}

function objectFor(schema: JsonObject, random: Random, depth: number): JsonObject {
  const out: JsonObject = {}
  if (!isObject(schema.properties)) return out
  for (const [name, property] of Object.entries(schema.properties)) out[name] = valueFor(property, random, depth + 1)
  return out
}

/** Base64 like Gemini's signatures, derived from the call so that a replay can be compared byte for byte. */
export function thoughtSignature(seed: string, model: string, call: JsonObject): string {
  const digest = (salt: string) =>
    createHash('sha256').update(seed).update('\0').update(model).update(salt).update(JSON.stringify(call)).digest()
  return Buffer.concat([digest('\0sig1'), digest('\0sig2')]).toString('base64')
}
