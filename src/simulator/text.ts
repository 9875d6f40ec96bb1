import { createHash } from 'node:crypto'
import type { GenerateRequest } from './request.js'

const WORDS = `
the of and to in is that it for on with as was at by be this from or have an they which one you
had not but what all were when we there can been has more if will would their so about out up them
into some could time these two may then first any like now my such make over our even most made
after also did many before must through back years where much your way well down should because each
just those people how too little state good very world still own see men work long get here between
both life being under never day same another know while last might great old year off come since
against go came right used take three small large place number part water light river city garden
house road window table paper letter story morning evening night summer winter spring autumn green
blue red yellow white black bright quiet early late simple clear open close warm cold soft strong
gentle careful quick slow happy calm brave kind fair plain rich round sharp sweet wide deep high low
near far new young short tall thin heavy empty full dry wet clean fresh busy free real true whole
apple bread butter cheese coffee honey lemon milk orange pepper rice salt sugar tea tomato bird cat
dog fish horse mouse rabbit sheep wolf bear tree flower grass leaf stone sand cloud rain snow wind sun
moon star hill valley forest field lake ocean island bridge tower castle village market school
library museum station harbor mountain desert meadow shore path door wall floor roof chair lamp
clock mirror pencil book map ticket coin key box basket bottle glass plate spoon knife fork cup
bowl blanket pillow candle rope wheel engine machine signal message answer question idea reason
reply notice matter method model pattern picture result sample season sentence shape sound stream
system task thought topic voice wave weather wonder walk run jump read write sing speak listen watch
build carry follow gather hold join keep learn move paint plant reach rest share start stop
travel turn visit wait wash wish carefully slowly quickly gently quietly together always often
sometimes today tomorrow yesterday again almost already perhaps rather really soon`
  .trim()
  .split(/\s+/)

// About one token in 15 carries a character that breaks naive SSE or JSON framing downstream.
const AWKWARD = 15

/** A 32-bit seed from the simulator's seed, a purpose, the system instruction and every part of every turn. */
export function seedOf(request: GenerateRequest, seed: string, purpose: string): number {
  const hash = createHash('sha256').update(seed).update('\0').update(purpose).update('\0s')
  for (const text of request.systemTexts) hash.update(text).update('\0')
  for (const turn of request.turns) {
    hash.update('\0r').update(turn.role).update('\0')
    for (const text of turn.texts) hash.update(text).update('\0')
    // Calls and their results shape the conversation as much as text does (signatures do not).
    for (const part of turn.parts) {
      if (part.functionCall !== undefined) hash.update(JSON.stringify(part.functionCall)).update('\0c')
      if (part.functionResponse !== undefined) hash.update(JSON.stringify(part.functionResponse)).update('\0f')
    }
  }
  return hash.digest().readUInt32LE(0)
}

/** mulberry32: tiny, fast, and good enough to make word choice look random. */
export class Random {
  constructor(private state: number) {}

  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0
    let r = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state)
    r ^= r + Math.imul(r ^ (r >>> 7), 61 | r)
    return (r ^ (r >>> 14)) >>> 0
  }

  word(): string {
    return WORDS[this.next() % WORDS.length] ?? ''
  }
}

/**
 * The reply as `count` tokens (one word each; every token after the first starts with a space),
 * a pure function of the seed, the system instruction and every turn of the conversation.
 * `purpose` keeps the words of thoughts apart from those of the answer.
 */
export function replyTokens(request: GenerateRequest, seed: string, count: number, purpose = 'reply'): string[] {
  const random = new Random(seedOf(request, seed, purpose))
  const tokens = new Array<string>(count)
  for (let i = 0; i < count; i++) {
    const r = random.next()
    let word = WORDS[r % WORDS.length] ?? ''
    switch ((r >>> 20) % (AWKWARD * 3)) {
      case 0:
        word += '\n'
        break
      case 1:
        word = `"${word}"`
        break
      case 2:
        word += '\\'
        break
    }
    tokens[i] = i === 0 ? word : ' ' + word
  }
  return tokens
}
