// The `id:` field of every chunk, thought and tool_call event: written by the worker, read back by
// the resume log (Last-Event-ID). Every event is `id: N\n…\n\n` and every data line one line of JSON.

/** The first line of the event numbered `id` (numbers start at 1 and count every event of a stream). */
export const idLine = (id: number): string => `id: ${id}\n`

const idOf = (frame: string) => Number.parseInt(frame.slice(4, frame.indexOf('\n')), 10)

/** The id of the first event in a batch. */
export const firstIdOf = (frames: string): number => idOf(frames)

/**
 * The id of the last event in a batch: the hot path, so one scan from the end. An event starts the
 * batch or follows a blank line, and no data line holds a raw newline, so `\n\nid: ` is always a
 * frame's start, never text such as "my id: 3" inside one.
 */
export function lastIdOf(frames: string): number {
  const at = frames.lastIndexOf('\n\nid: ', frames.length - 3)
  const start = at < 0 ? 0 : at + 2
  return Number.parseInt(frames.slice(start + 4, frames.indexOf('\n', start)), 10)
}

/** The events of a batch whose id is above `afterId`. */
export function eventsAfter(frames: string, afterId: number): string {
  if (afterId <= 0 || firstIdOf(frames) > afterId) return frames
  let out = ''
  for (const frame of frames.split('\n\n')) {
    if (frame && idOf(frame) > afterId) out += `${frame}\n\n`
  }
  return out
}
