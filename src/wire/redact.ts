// Provider text (an upstream's error message) scrubbed of secrets before it reaches a client or a
// log. Two kinds of evidence, applied to the same text and replaced together:
//
//   the gateway's own secrets   every deployment's apiKey (GEMINI_API_KEY among them), and tokens the
//                               worker minted (a Vertex access token): the whole secret, any 8 or more
//                               characters of it, as written, JSON-escaped or URL-encoded
//   anything shaped like a key  AIza…, sk-…, ya29.…, `api_key:…`, `key=…`, `Bearer …`, a token masked
//                               with `***`, and long random-looking tokens (letters, digits, both cases)
//
// The worker redacts where it builds the message (workers/upstream.ts statusFailure); the front
// redacts every error event it writes again (chat/turn.ts), a last line of defence.

export const REDACTED = '[redacted]'

/** A run of this many characters of a secret is as good as the secret: providers echo prefixes and suffixes. */
const GRAM = 8
/** A configured secret shorter than this is matched whole only, never by its parts. */
const MIN_WHOLE = 6
/** Tokens minted at run time (access tokens) kept as secrets: the latest few, as they rotate. */
const MINTED_KEPT = 8

/**
 * Key shapes; the last capture group is what is replaced, so that `Bearer ` or `api_key:` stays
 * readable. `looks`, when present, must also hold for the captured value.
 */
const SHAPES: Array<{ re: RegExp; looks?: (value: string) => boolean }> = [
  // Google API keys: AIza and 35 more; shorter runs are still a key's prefix.
  { re: /(AIza[0-9A-Za-z_-]{8,})/g },
  // OpenAI-style keys, masked or not: sk-…, sk-proj-…, sk-abc1****wxyz; glued to other text when long.
  { re: /(?<![A-Za-z0-9_-])(sk-[^\s"'`<>,;)(\]}[]{4,})/g },
  { re: /(sk-[A-Za-z0-9_*-]{16,})/g },
  // Google OAuth access tokens.
  { re: /(ya29\.[^\s"'`<>,;)(\]}[]+)/g },
  // Gemini's consumer naming (`Consumer 'api_key:…'`) and a key in a query string.
  {
    re: /(?:api[_-]?key|access[_-]?token|token|key|secret|password)(?:["']?\s*[:=]\s*["']?)([^\s"'`<>,;&)(\]}[]{4,})/gi,
    looks: credentialLooking(12)
  },
  // An Authorization header's credentials.
  { re: /(?:Bearer|Basic|Token)\s+([^\s"'`<>,;)(\]}[]{4,})/gi, looks: credentialLooking(20) },
  // A masked token: anything with three or more `*` (or `•`) inside it.
  { re: /([^\s"'`<>,;)(\]}[]*[*•]{3,}[^\s"'`<>,;)(\]}[]*)/g },
  // Long random-looking tokens.
  { re: /(?<![A-Za-z0-9_+=-])([A-Za-z0-9_+-]{24,}={0,2})(?![A-Za-z0-9_+=-])/g, looks: randomLooking }
]

/**
 * What follows `key:`, `token=` or `Bearer` is a credential only if it does not read as a word: it has
 * a digit or a symbol tokens use, or is longer than words are (`letters` and more; 20 after a bare
 * `Bearer`, `Basic` or `Token`, where "token from the model" and "Basic authentication" are prose).
 * "API key: invalid" stays readable; a configured secret is caught by its runs whatever it is.
 */
function credentialLooking(letters: number): (value: string) => boolean {
  return (value) => value.length >= letters || /[0-9_+/=~*-]/.test(value)
}

/** 24+ characters mixing upper case, lower case and digits, or 32+ hex digits (with dashes): a token, not a word. */
function randomLooking(token: string): boolean {
  const hex = token.replace(/-/g, '')
  if (hex.length >= 32 && /^[0-9a-fA-F]+$/.test(hex)) return true
  return /[A-Z]/.test(token) && /[a-z]/.test(token) && /[0-9]/.test(token)
}

/**
 * The text as a client might decode it: `%XX` and JSON's `\uXXXX`, `\"`, `\\`, `\/` escapes decoded,
 * each decoded character remembering where in the text it came from.
 */
function decoded(text: string): { chars: string; from: number[]; to: number[] } {
  let chars = ''
  const from: number[] = []
  const to: number[] = []
  for (let i = 0; i < text.length;) {
    let char = text.charAt(i)
    let next = i + 1
    if (char === '%' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      char = String.fromCharCode(Number.parseInt(text.slice(i + 1, i + 3), 16))
      next = i + 3
    } else if (char === '\\' && text[i + 1] === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
      char = String.fromCharCode(Number.parseInt(text.slice(i + 2, i + 6), 16))
      next = i + 6
    } else if (char === '\\' && i + 1 < text.length && '"\\/'.includes(text.charAt(i + 1))) {
      char = text.charAt(i + 1)
      next = i + 2
    }
    chars += char
    from.push(i)
    to.push(next)
    i = next
  }
  return { chars, from, to }
}

export class Redactor {
  /** Every GRAM-character run of every secret. */
  private readonly grams = new Set<string>()
  /** Secrets too short for grams, matched whole. */
  private readonly whole = new Set<string>()
  private readonly minted: string[] = []

  constructor(secrets: Iterable<string | undefined> = []) {
    for (const secret of secrets) if (secret) this.learn(secret)
  }

  /** A token minted at run time (a Vertex access token): a secret from now on, among the latest few. */
  mint(secret: string): void {
    if (!secret || this.minted.includes(secret)) return
    this.minted.push(secret)
    if (this.minted.length > MINTED_KEPT) this.minted.shift()
    this.learn(secret)
  }

  private learn(secret: string): void {
    if (secret.length < GRAM) {
      if (secret.length >= MIN_WHOLE) this.whole.add(secret)
      return
    }
    for (let i = 0; i + GRAM <= secret.length; i++) this.grams.add(secret.slice(i, i + GRAM))
  }

  /** The text with every secret and key-shaped token replaced by `[redacted]`. */
  redact(text: string): string {
    if (text === '') return text
    // Characters to replace; runs of them become one `[redacted]`.
    const hidden = new Uint8Array(text.length)
    const hide = (start: number, end: number) => hidden.fill(1, start, end)

    this.mark(text, (start, end) => hide(start, end))
    const view = decoded(text)
    if (view.chars.length !== text.length) {
      this.mark(view.chars, (start, end) => hide(view.from[start] ?? 0, view.to[end - 1] ?? text.length))
    }
    for (const { re, looks } of SHAPES) {
      for (const match of text.matchAll(re)) {
        const value = match[1]
        if (value === undefined || (looks && !looks(value))) continue
        const start = match.index + match[0].lastIndexOf(value)
        hide(start, start + value.length)
      }
    }

    let out = ''
    for (let i = 0; i < text.length;) {
      if (hidden[i] === 0) {
        out += text.charAt(i++)
        continue
      }
      out += REDACTED
      while (i < text.length && hidden[i] === 1) i++
    }
    return out
  }

  /** Calls `found` for every GRAM-run of a secret and every short secret in `text`. */
  private mark(text: string, found: (start: number, end: number) => void): void {
    if (this.grams.size > 0) {
      for (let i = 0; i + GRAM <= text.length; i++) if (this.grams.has(text.slice(i, i + GRAM))) found(i, i + GRAM)
    }
    for (const secret of this.whole) {
      for (let at = text.indexOf(secret); at >= 0; at = text.indexOf(secret, at + 1)) found(at, at + secret.length)
    }
  }
}

/** Shapes only: for text with no configured secret at hand. */
export const SHAPES_ONLY = new Redactor()

const ofConfig = new WeakMap<object, Redactor>()

/** The front's secrets: every deployment's key (GEMINI_API_KEY is the implicit deployments'), learnt once per configuration. */
export function configRedactor(config: {
  upstreams: { deployments: ReadonlyArray<{ apiKey?: string }> }
  GEMINI_API_KEY?: string
}): Redactor {
  let redactor = ofConfig.get(config)
  if (!redactor) {
    redactor = new Redactor([config.GEMINI_API_KEY, ...config.upstreams.deployments.map((d) => d.apiKey)])
    ofConfig.set(config, redactor)
  }
  return redactor
}

/** An error event's payload with its message redacted (the front's last line of defence). */
export function redactedError<T extends { message: string }>(error: T, redactor: Redactor): T {
  const message = redactor.redact(error.message)
  return message === error.message ? error : { ...error, message }
}
