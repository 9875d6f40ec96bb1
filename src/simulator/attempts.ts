import { createHash } from 'node:crypto'
import { oldestKey } from '../shared/maps.js'

/** Counts identical request bodies for `times=N`; the oldest entries go first once `limit` is reached. */
export class AttemptCounter {
  readonly #counts = new Map<string, number>()
  readonly #limit: number

  constructor(limit = 10_000) {
    this.#limit = limit
  }

  /** 1 for the first request with this body, 2 for the next identical one, and so on. */
  next(body: string): number {
    const key = createHash('sha256').update(body).digest('base64')
    const count = (this.#counts.get(key) ?? 0) + 1
    // Re-inserting moves the key to the end of the Map's order, so eviction drops the least recent.
    this.#counts.delete(key)
    const oldest = this.#counts.size >= this.#limit ? oldestKey(this.#counts) : undefined
    if (oldest !== undefined) this.#counts.delete(oldest)
    this.#counts.set(key, count)
    return count
  }
}
