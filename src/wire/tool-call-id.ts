// Ids of tool calls, shared by both threads. A provider that ids its calls (Gemini 3) keeps its own;
// one that does not gets a gateway id, which is never sent upstream (the model never saw it).
// OpenAI-shaped clients (LangChain and others) rebuild a call from its id, type, name and arguments
// alone, so on /v1 the thought signature travels inside the id and comes back with it.

const GATEWAY_ID = /^gwc_[A-Za-z0-9_-]{16}$/
const SIGNATURE_SEPARATOR = '__sig__'

/** A fresh id for a call the provider sent without one. */
export function newGatewayCallId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12))
  return `gwc_${Buffer.from(bytes).toString('base64url')}`
}

export const isGatewayCallId = (id: string): boolean => GATEWAY_ID.test(id)

/** The id an OpenAI client sees: the call's id, and its signature when it has one. */
export const openAiToolCallId = (id: string, signature: string | undefined): string =>
  signature ? `${id}${SIGNATURE_SEPARATOR}${signature}` : id

/** The call's id and signature back from what an OpenAI client returned. */
export function parseOpenAiToolCallId(value: string): { id: string; signature?: string } {
  const at = value.indexOf(SIGNATURE_SEPARATOR)
  if (at < 0) return { id: value }
  return { id: value.slice(0, at), signature: value.slice(at + SIGNATURE_SEPARATOR.length) }
}
