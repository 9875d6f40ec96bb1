// Maps iterate in insertion order, which makes a Map a cheap queue of keys, oldest first.

/** The key inserted first (or re-inserted least recently), undefined for an empty map. */
export function oldestKey<K>(map: ReadonlyMap<K, unknown>): K | undefined {
  for (const key of map.keys()) return key
  return undefined
}
