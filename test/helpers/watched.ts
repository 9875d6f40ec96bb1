// A request whose events are watched as they arrive, for tests that act at a given chunk (a fault,
// a second client) and then wait for the end by name.
import { until, type TestGateway } from './gateway.js'
import type { ChatResult, SseEvent } from './sse.js'

export function watched(start: (onEvent: (e: SseEvent) => void) => Promise<ChatResult>) {
  const events: SseEvent[] = []
  let settled = false
  const result = start((e) => events.push(e)).finally(() => (settled = true))
  result.catch(() => {}) // a failure is thrown where the test awaits the end, not as an unhandled rejection
  return {
    events,
    result,
    ended: () => settled,
    chunks: () => events.filter((e) => e.event === 'chunk').length,
    /** Waits for the end, with a message naming what hung instead of a bare test timeout. */
    async end(what: string): Promise<ChatResult> {
      await until(() => settled, what)
      return result
    }
  }
}

/** gateway_redis_up as a replica reports it. */
export const redisUp = async (gw: TestGateway) => (await (await fetch(`${gw.url}/metrics`)).text()).match(/^gateway_redis_up (\d)/m)?.[1]
