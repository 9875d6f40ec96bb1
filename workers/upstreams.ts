// The upstream clients of one worker: one per deployment, made on its first turn and kept, so that
// connections and access tokens are reused across turns.
import type { WorkerSettings } from '../src/protocol.js'
import { Redactor } from '../src/wire/redact.js'
import { createGeminiUpstream } from './gemini.js'
import { createOpenAiUpstream } from './openai.js'
import type { Upstream } from './upstream.js'

export function createUpstreams(settings: Pick<WorkerSettings, 'deployments' | 'upstreamReader'>): (deployment: string) => Upstream {
  const byId = new Map(settings.deployments.map((d) => [d.id, d]))
  // Every deployment's key, whichever deployment's error quotes it.
  const redactor = new Redactor(settings.deployments.map((d) => d.apiKey))
  const made = new Map<string, Upstream>()
  return (id) => {
    let upstream = made.get(id)
    if (!upstream) {
      const deployment = byId.get(id)
      if (!deployment) throw new Error(`no deployment ${id} in this worker's settings`)
      upstream =
        deployment.provider === 'openai'
          ? createOpenAiUpstream(deployment, redactor)
          : createGeminiUpstream(deployment, settings.upstreamReader, redactor)
      made.set(id, upstream)
    }
    return upstream
  }
}
