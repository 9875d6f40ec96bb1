// autocannon, in this process, with the figures the scenarios print. autocannon counts a request
// when its response ends, so for a stream the latency is the time to the end of the stream.
// It cannot see SSE events: an `error` event inside a 200 counts as a success here, which is why
// the gateway scenarios also read gateway_streams_total{outcome} from /metrics.
import autocannon from 'autocannon'

export interface CannonOptions {
  url: string
  connections: number
  durationSec: number
  body: string
  headers?: Record<string, string>
}

export interface CannonFigures {
  durationSec: number
  reqPerSec: number
  ok: number
  non2xx: number
  errors: number
  timeouts: number
  latencyP50Ms: number
  latencyP99Ms: number
  latencyMaxMs: number
}

export async function cannon(options: CannonOptions): Promise<CannonFigures> {
  const result = await autocannon({
    url: options.url,
    connections: options.connections,
    duration: options.durationSec,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...options.headers },
    body: options.body,
    timeout: 30
  })
  return {
    durationSec: result.duration,
    reqPerSec: result['2xx'] / result.duration,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    latencyMaxMs: result.latency.max
  }
}
