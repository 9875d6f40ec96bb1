// Tool declarations, tool choice and thinking settings, checked at the edge for what Gemini itself
// would refuse with a 400 after the quota was spent: one place for /api/chat and /v1.
import { GatewayError } from '../errors.js'
import type { ThinkingOptions, ToolChoice, ToolDeclaration } from '../protocol.js'

const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'array', 'object', 'null'])
/** Gemini refuses deeper schemas; so does this check, before anything is sent. */
const MAX_SCHEMA_DEPTH = 32

const refuse = (message: string): never => {
  throw new GatewayError('bad_request', message)
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** A function's `parameters`: an object schema whose every subschema Gemini can read. */
function checkParameters(schema: Record<string, unknown>, where: string): void {
  if (schema.type !== 'object') refuse(`${where}.type must be "object": a function takes named arguments`)
  checkSchema(schema, where, 0)
}

function checkSchema(schema: unknown, where: string, depth: number): void {
  if (depth > MAX_SCHEMA_DEPTH) refuse(`${where} is nested deeper than ${MAX_SCHEMA_DEPTH} levels`)
  if (!isObject(schema)) return refuse(`${where} must be a JSON Schema object`)
  const types = Array.isArray(schema.type) ? (schema.type as unknown[]) : schema.type === undefined ? [] : [schema.type]
  for (const type of types)
    if (typeof type !== 'string' || !TYPES.has(type)) refuse(`${where}.type ${JSON.stringify(type)} is not a JSON Schema type`)
  if (schema.properties !== undefined) {
    if (!isObject(schema.properties)) refuse(`${where}.properties must be an object`)
    for (const [name, property] of Object.entries(schema.properties as Record<string, unknown>)) {
      checkSchema(property, `${where}.properties.${name}`, depth + 1)
    }
  }
  if (schema.required !== undefined) {
    const props = isObject(schema.properties) ? schema.properties : {}
    if (!Array.isArray(schema.required)) refuse(`${where}.required must be an array of property names`)
    for (const name of schema.required as unknown[]) {
      if (typeof name !== 'string' || !(name in props))
        refuse(`${where}.required names ${JSON.stringify(name)}, which is not in its properties`)
    }
  }
  if (schema.items !== undefined) checkSchema(schema.items, `${where}.items`, depth + 1)
  for (const key of ['anyOf', 'oneOf'] as const) {
    const variants = schema[key]
    if (variants === undefined) continue
    if (!Array.isArray(variants) || variants.length === 0) refuse(`${where}.${key} must be a non-empty array of schemas`)
    ;(variants as unknown[]).forEach((v, i) => checkSchema(v, `${where}.${key}[${i}]`, depth + 1))
  }
  if (schema.enum !== undefined && (!Array.isArray(schema.enum) || schema.enum.length === 0))
    refuse(`${where}.enum must be a non-empty array`)
}

/** Declarations with unique names and readable parameters; throws bad_request naming the first fault. */
export function checkTools(tools: readonly ToolDeclaration[], where = 'body/tools'): void {
  const names = new Set<string>()
  tools.forEach((tool, i) => {
    if (names.has(tool.name)) refuse(`${where}/${i}/name '${tool.name}' is declared twice`)
    names.add(tool.name)
    if (tool.parameters) checkParameters(tool.parameters, `${where}/${i}/parameters`)
  })
}

/** A choice that needs tools has some, and a named one is among them. */
export function checkToolChoice(
  choice: ToolChoice | undefined,
  tools: readonly ToolDeclaration[] | undefined,
  where = 'body/toolChoice'
): void {
  if (choice === undefined || choice === 'auto' || choice === 'none') return
  if (!tools?.length) refuse(`${where} needs tools to choose from`)
  if (typeof choice === 'object' && !tools?.some((t) => t.name === choice.name))
    refuse(`${where} names '${choice.name}', which is not in tools`)
}

/** Gemini takes a thinking budget or a thinking level, never both. */
export function checkThinking(thinking: ThinkingOptions | undefined, where = 'body/thinking'): void {
  if (thinking?.budget !== undefined && thinking.level !== undefined) refuse(`${where}: set budget or level, not both`)
}
