// The events of every stream, kept for a short time so that a client that lost its connection can
// resume with Last-Event-ID (GET /api/chat/streams/:requestId), on any replica when Redis holds them.

export interface ResumeSink {
  /** Framed chunk events the client has not seen. */
  frames(frames: string): void
  /** The terminal event, framed. */
  end(terminal: string): void
}

export interface Attachment {
  detach(): void
}

export type AttachResult = { kind: 'unknown' } | { kind: 'gone' } | { kind: 'attached'; attachment: Attachment }

export interface StreamLog {
  /** A new stream produced by this replica. */
  open(requestId: string): void
  /** Framed chunk events, in order; `lastId` is the id of the last one. */
  append(requestId: string, frames: string, lastId: number): void
  /** The framed terminal event; after RESUME_TTL_MS the events are gone and only the fact that it ended remains. */
  end(requestId: string, terminal: string): void
  /** Replays the events after `afterId`, then follows the stream to its terminal event. */
  attach(requestId: string, afterId: number, sink: ResumeSink): Promise<AttachResult>
  /** Whether a client follows the stream now (a producer in its RESUME_GRACE_MS asks). */
  followed(requestId: string): Promise<boolean>
  close(): Promise<void>
}

/** The events of a batch of frames whose id is above `afterId` (each frame is `id: N\n…\n\n`). */
export function eventsAfter(frames: string, afterId: number): string {
  if (afterId <= 0 || firstIdOf(frames) > afterId) return frames
  let out = ''
  for (const frame of frames.split('\n\n')) {
    if (frame && idOf(frame) > afterId) out += `${frame}\n\n`
  }
  return out
}

const idOf = (frame: string) => Number.parseInt(frame.slice(4, frame.indexOf('\n')), 10)
/** The id of the first event in a batch. */
export const firstIdOf = (frames: string) => idOf(frames)

/**
 * The id of the last event in a batch: the hot path, so one scan from the end. An event starts the
 * batch or follows a blank line, and no data line holds a raw newline (it is one line of JSON), so
 * `\n\nid: ` is always a frame's start, never text such as "my id: 3" inside one.
 */
export function lastIdOf(frames: string): number {
  const at = frames.lastIndexOf('\n\nid: ', frames.length - 3)
  const start = at < 0 ? 0 : at + 2
  return Number.parseInt(frames.slice(start + 4, frames.indexOf('\n', start)), 10)
}
