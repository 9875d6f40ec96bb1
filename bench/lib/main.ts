// Entry point of every scenario: children are stopped on any exit, an error exits non-zero, and a
// forgotten handle can never keep a finished benchmark alive.
import { installCleanup, stopAll } from './children.js'

export async function runMain(main: () => Promise<void>): Promise<void> {
  installCleanup()
  try {
    await main()
  } catch (err) {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  } finally {
    await stopAll()
    setTimeout(() => process.exit(), 2_000).unref()
  }
}
