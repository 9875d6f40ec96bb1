import type { ServerResponse } from 'node:http'
import type { Ending, ReplyPlan } from './reply.js'

/**
 * Writes `events` on a response whose headers are already sent: the first after `ttftMs`, the rest
 * `delayMs` apart (all at once when 0), then applies `ending`. Nothing is written after the client leaves.
 */
export function playStream(res: ServerResponse, events: string[], ending: Ending, ttftMs: number, delayMs: number): void {
  if (ending === 'hang') return
  let next = 0
  let timer: NodeJS.Timeout | undefined
  res.once('close', () => clearTimeout(timer))

  const finish = () => {
    if (ending === 'end') {
      res.end()
      return
    }
    // A bare destroy() would discard chunks still corked in the socket; end() flushes them first,
    // and the chunked body stays unterminated, which the client sees as a dropped connection.
    const socket = res.socket
    socket?.end(() => socket.destroy())
  }
  const step = () => {
    if (delayMs === 0) {
      if (events.length > 0) res.write(events.join(''))
      next = events.length
    } else if (next < events.length) {
      res.write(events[next++] ?? '')
    }
    if (next < events.length) timer = setTimeout(step, delayMs)
    else finish()
  }
  if (ttftMs === 0) step()
  else timer = setTimeout(step, ttftMs)
}

/** A unary answer: after the whole reply's time (ttft and every gap), the body; a drop or hang as in a stream. */
export function playUnary(
  res: ServerResponse,
  plan: Extract<ReplyPlan, { kind: 'stream' }>,
  answer: { status: number; body: string }
): void {
  if (plan.ending === 'hang') return
  const timer = setTimeout(
    () => {
      if (plan.ending === 'drop') res.destroy()
      else res.writeHead(answer.status, { 'content-type': 'application/json; charset=UTF-8' }).end(answer.body)
    },
    plan.ttftMs + plan.delayMs * Math.max(0, plan.events.length - 1)
  )
  res.once('close', () => clearTimeout(timer))
}
