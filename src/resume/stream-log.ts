// The events of every stream, kept for a short time so that a client that lost its connection can
// resume with Last-Event-ID (GET /api/chat/streams/:requestId), on any replica when Redis holds them.

/** How long "it ended" is remembered after its events are gone (then: 204 instead of 404). */
export const GONE_MS = 24 * 3_600_000

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
