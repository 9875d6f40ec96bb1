// Fault injection for isolation tests. Loaded only when the gateway runs with CHAOS=1.
const DIRECTIVE = /\[\[chaos:(throw|exit|oom|spin)\]\]/

export function injectChaos(userText: string): void {
  const kind = DIRECTIVE.exec(userText)?.[1]
  switch (kind) {
    case 'throw':
      // Asynchronous, so it escapes the task's promise the way a library's background error does.
      setTimeout(() => {
        throw new Error('chaos: uncaught exception in worker')
      }, 0)
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
