// The events of every stream, kept for a short time so that a client that lost its connection can
// resume with Last-Event-ID (GET /api/chat/streams/:requestId), on any replica when Redis holds them.
//
// A stream belongs to the client that made it when API keys are in use: a resume by another key is
// answered exactly as an unknown stream (404 stream_not_found), so it says nothing about the stream.
// Without API keys anyone with the id may resume (addresses change, so they cannot bind a stream).

/** How long "it ended" is remembered after its events are gone (then: 204 instead of 404). */
export const GONE_MS = 24 * 3_600_000

/** The tenant a stream is bound to: the digest of the API key that made it; none without API keys. */
export const tenantOf = (clientKey: string | undefined): string | undefined => (clientKey?.startsWith('key:') ? clientKey : undefined)

/** Whether a resumer may see a stream: the same tenant, or a stream bound to none while the resumer has none either. */
export const sameTenant = (owner: string | undefined, resumer: string | undefined): boolean => owner === resumer

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
  /** A new stream produced by this replica, bound to `tenant` (tenantOf the client's key) when there is one. */
  open(requestId: string, tenant?: string): void
  /** Framed chunk events, in order; `lastId` is the id of the last one. */
  append(requestId: string, frames: string, lastId: number): void
  /**
   * The framed terminal event, and the id of the last event the stream produced (0: none), so that
   * a follower that holds fewer can tell it is short. After RESUME_TTL_MS the events are gone and
   * only the fact that it ended remains. Settles once every replica can read the end (or the store
   * failed to take it), so that the client gets its terminal event only then: a client that saw the
   * end and resumes elsewhere finds the whole stream. Never rejects.
   */
  end(requestId: string, terminal: string, lastId: number): Promise<void>
  /**
   * Replays the events after `afterId`, then follows the stream to its terminal event; a stream of
   * another tenant is 'unknown'. Never ends with the stream's terminal event while holding fewer
   * events than it produced: stream_lost then.
   */
  attach(requestId: string, afterId: number, sink: ResumeSink, tenant?: string): Promise<AttachResult>
  /** Whether a client follows the stream now (a producer in its RESUME_GRACE_MS asks). */
  followed(requestId: string): Promise<boolean>
  close(): Promise<void>
}
