// Fault injection for isolation tests. Loaded only when the gateway runs with CHAOS=1.
// `[[chaos:KIND-once]]` faults only the first attempt, so the retry in the quarantine pool is served.
const DIRECTIVE = /\[\[chaos:(throw|exit|oom|spin)(-once)?\]\]/

/** Resolves when the attempt may go on; a fault never lets it. */
export async function injectChaos(userText: string, attempt: number): Promise<void> {
  const match = DIRECTIVE.exec(userText)
  if (!match || (match[2] && attempt > 1)) return
  switch (match[1]) {
    case 'throw':
      // Asynchronous, so it escapes the task's promise the way a library's background error does; the
      // task waits for it, so a fast reply cannot finish first and leave the throw to an idle worker.
      await new Promise(() => {
        setTimeout(() => {
          throw new Error('chaos: uncaught exception in worker')
        }, 0)
      })
      return
    case 'exit':
      process.exit(3)
      break
    case 'oom': {
      const hoard: number[][] = []
      for (;;) hoard.push(new Array<number>(1_000_000).fill(hoard.length))
    }
    case 'spin':
      for (;;);
  }
}
