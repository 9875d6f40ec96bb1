// The upstream clients of one worker: one per deployment, made on its first turn and kept, so that
// connections and access tokens are reused across turns.
import type { WorkerSettings } from '../src/protocol.js'
import { createGeminiUpstream } from './gemini.js'
import { createOpenAiUpstream } from './openai.js'
import type { Upstream } from './upstream.js'

export function createUpstreams(settings: Pick<WorkerSettings, 'deployments' | 'upstreamReader'>): (deployment: string) => Upstream {
  const byId = new Map(settings.deployments.map((d) => [d.id, d]))
  const made = new Map<string, Upstream>()
  return (id) => {
    let upstream = made.get(id)
    if (!upstream) {
      const deployment = byId.get(id)
      if (!deployment) throw new Error(`no deployment ${id} in this worker's settings`)
      upstream =
        deployment.provider === 'openai' ? createOpenAiUpstream(deployment) : createGeminiUpstream(deployment, settings.upstreamReader)
      made.set(id, upstream)
    }
    return upstream
  }
}
