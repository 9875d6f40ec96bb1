// Command-line arguments of a scenario: positional words and `--name=value` options.
//   npm run bench:modes -- fast            npm run bench:long -- --streams=1000

export interface Args {
  positional: string[]
  /** A numeric option, or `fallback` when absent; exits with a message when not a number. */
  num(name: string, fallback: number): number
  /** A comma-separated numeric list. */
  list(name: string, fallback: number[]): number[]
  /** A comma-separated list of words. */
  words(name: string, fallback: string[]): string[]
  has(name: string): boolean
}

export function parseArgs(argv = process.argv.slice(2)): Args {
  const options = new Map<string, string>()
  const positional: string[] = []
  for (const arg of argv) {
    const [, name, value = ''] = /^--([\w-]+)(?:=(.*))?$/.exec(arg) ?? []
    if (name) options.set(name, value)
    else positional.push(arg)
  }
  const number = (name: string, raw: string) => {
    const value = Number(raw)
    if (raw === '' || !Number.isFinite(value)) {
      process.stderr.write(`--${name}=${raw}: expected a number\n`)
      process.exit(2)
    }
    return value
  }
  return {
    positional,
    num: (name, fallback) => {
      const raw = options.get(name)
      return raw === undefined ? fallback : number(name, raw)
    },
    list: (name, fallback) =>
      options
        .get(name)
        ?.split(',')
        .map((v) => number(name, v)) ?? fallback,
    words: (name, fallback) => options.get(name)?.split(',').filter(Boolean) ?? fallback,
    has: (name) => options.has(name)
  }
}
