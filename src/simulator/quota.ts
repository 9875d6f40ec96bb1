// The per-minute request quota Gemini enforces per project and model (SIM_RPM): over it, a 429
// RESOURCE_EXHAUSTED with QuotaFailure and a RetryInfo delay that runs to the end of the window.

const WINDOW_MS = 60_000

export class RequestQuota {
  readonly #windows = new Map<string, { start: number; count: number }>()

  /** `rpm` 0: no quota. */
  constructor(private readonly rpm: number) {}

  /** Counts one request of `caller` for `model`; returns the RetryInfo delay (ms) when it is over the quota. */
  take(caller: string, model: string, now = Date.now()): number | undefined {
    if (this.rpm === 0) return undefined
    const key = `${caller}\0${model}`
    let window = this.#windows.get(key)
    if (!window || now - window.start >= WINDOW_MS) {
      window = { start: now, count: 0 }
      this.#windows.set(key, window)
    }
    if (window.count >= this.rpm) return Math.max(1_000, Math.ceil((window.start + WINDOW_MS - now) / 1_000) * 1_000)
    window.count++
    return undefined
  }
}
