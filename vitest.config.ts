import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Compiles dist/ first: workers and child processes run tsc's output (test/global-setup.ts).
    globalSetup: ['test/global-setup.ts'],
    // Every suite starts real servers and worker pools; two cores do not gain from running many at once.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
    // A backstop for hangs, far above what a loaded 2-core machine needs: no test asserts a duration.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks'
  }
})
