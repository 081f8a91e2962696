/**
 * @module
 * The simulator's timers (every one tracked, so `close()` leaves none behind) and its notion of local time.
 */

// Deno's timers are numbers; node:http's types widen them, so keep the type loose.
type Timer = ReturnType<typeof setTimeout>;

/** Tracked timers bound to a lifetime: `stop()` clears them all and aborts the lifetime. */
export class Clock {
  #timers = new Set<Timer>();
  #life = new AbortController();

  /** Aborted on `stop()` (and replaced on `renew()`). */
  get signal(): AbortSignal {
    return this.#life.signal;
  }

  /** Runs `fn` after `ms` unless `signal` (or the lifetime) is aborted first. */
  after(ms: number, fn: () => void, signal?: AbortSignal): void {
    const life = this.#life.signal;
    if (life.aborted || signal?.aborted) return;
    const t = setTimeout(() => {
      this.#timers.delete(t);
      signal?.removeEventListener("abort", cancel);
      if (!life.aborted && !signal?.aborted) fn();
    }, Math.max(0, ms));
    const cancel = () => {
      clearTimeout(t);
      this.#timers.delete(t);
    };
    this.#timers.add(t);
    signal?.addEventListener("abort", cancel, { once: true });
  }

  /** Resolves after `ms`, or at once when `signal` or the lifetime is aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const life = this.#life.signal;
      const stop = signal ? AbortSignal.any([signal, life]) : life;
      if (stop.aborted || ms <= 0) return resolve();
      const t = setTimeout(() => {
        this.#timers.delete(t);
        stop.removeEventListener("abort", done);
        resolve();
      }, ms);
      const done = () => {
        clearTimeout(t);
        this.#timers.delete(t);
        resolve();
      };
      this.#timers.add(t);
      stop.addEventListener("abort", done, { once: true });
    });
  }

  /** Waits until `signal` (or the lifetime) is aborted: a request that never answers. */
  hang(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const stop = signal ? AbortSignal.any([signal, this.#life.signal]) : this.#life.signal;
      if (stop.aborted) return resolve();
      stop.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  /** Clears every timer and aborts the lifetime. */
  stop(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#life.abort();
  }

  /** `stop()`, then a new lifetime (for `reset()`). */
  renew(): void {
    this.stop();
    this.#life = new AbortController();
  }
}

/**
 * The webhook `date_time`: the server's local wall time rendered with a `Z`, as `sendDataWebhook` computes it
 * (`Date.now() - getTimezoneOffset()`); -180 = America/Sao_Paulo, the official image's TZ.
 */
export function localIso(utcOffsetMinutes: number, at = Date.now()): string {
  return new Date(at + utcOffsetMinutes * 60_000).toISOString();
}
