/**
 * @module
 * Webhook delivery (contract §4): the envelope (`date_time` = local wall time + "Z"), the event filter by config
 * name, `byEvents` suffixes, custom headers (2.x), 2.4.0's extra headers, and the version's retry policy
 * (2.x: 10 attempts, 5 s doubling to 300 s ± 20 %, 30 s per attempt, no retry on 400/401/403/404/422;
 * 1.8: 10 attempts 30 s apart, every failure retried, no attempt timeout).
 */
import { eventConfigName, eventSuffix } from "../../shared/evolution/events.ts";
import { localIso } from "./clock.ts";
import type { Ctx, Inst } from "./state.ts";
import type { Delivery } from "./types.ts";

export function isHttpUrl(u: unknown): u is string {
  if (typeof u !== "string") return false;
  try {
    const p = new URL(u);
    return p.protocol === "http:" || p.protocol === "https:";
  } catch {
    return false;
  }
}

/** Deliveries of one simulator: the attempt log, the pending count for `drain()`, and their lifetime. */
export class Webhooks {
  #log: Delivery[] = [];
  #pending = 0;
  #waiters: Array<() => void> = [];
  /** Per instance, the first attempt of each delivery waits for the previous one (retries do not block). */
  #chains = new Map<string, Promise<unknown>>();
  #life = new AbortController();

  constructor(private readonly ctx: Omit<Ctx, "emit">) {}

  /** Sends `event` to the instance's webhook if it is subscribed; resolves when the delivery is over. */
  emit(inst: Inst, event: string, data: unknown): Promise<void> {
    const { cfg } = this.ctx;
    const hook = inst.webhook;
    if (inst.frozen || !hook || !hook.enabled || !isHttpUrl(hook.url)) return Promise.resolve();
    if (!hook.events.includes(eventConfigName(event))) return Promise.resolve();
    const body: Record<string, unknown> = {
      event,
      instance: inst.name,
      data,
      destination: hook.url,
      date_time: localIso(this.ctx.live.utcOffsetMinutes),
    };
    if (inst.ownerJid) body.sender = inst.ownerJid;
    const serverUrl = this.ctx.self.serverUrl ?? this.ctx.self.url;
    if (serverUrl) body.server_url = serverUrl;
    if (!cfg.v1) body.apikey = null;
    const url = hook.webhookByEvents ? `${hook.url}/${eventSuffix(event)}` : hook.url;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      ...(cfg.v1 ? {} : hook.headers ?? {}),
    };
    if (cfg.v24) {
      Object.assign(headers, {
        "x-instance-id": inst.id,
        "x-instance-name": inst.name,
        "x-event-type": event,
        "x-timestamp": String(Date.now()),
        "user-agent": "EvolutionAPI-Webhook/2.3.7",
      });
    }
    return this.#deliver(url, headers, JSON.stringify(body), event, inst.name);
  }

  #deliver(url: string, headers: Record<string, string>, body: string, event: string, name: string): Promise<void> {
    const { retry } = this.ctx.cfg;
    const life = this.#life.signal;
    this.#pending++;
    const attemptOnce = async (attempt: number): Promise<number | null> => {
      let status: number | null = null;
      try {
        const signals = [life];
        if (retry.timeoutMs !== null) signals.push(AbortSignal.timeout(Math.max(1, retry.timeoutMs)));
        const res = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.any(signals) });
        status = res.status;
        await res.body?.cancel();
      } catch {
        status = null;
      }
      if (!life.aborted) {
        this.#log.push({ url, event, instance: name, status, attempt });
        if (this.#log.length > 12_000) this.#log = this.#log.slice(-10_000);
      }
      return status;
    };
    const over = (status: number | null) =>
      status !== null && ((status >= 200 && status < 300) || retry.noRetry.has(status));
    const first = (this.#chains.get(name) ?? Promise.resolve()).then(() => (life.aborted ? null : attemptOnce(1)));
    const link = first.catch(() => {});
    this.#chains.set(name, link);
    return first.then(async (status) => {
      if (this.#chains.get(name) === link) this.#chains.delete(name);
      for (let attempt = 2; attempt <= retry.attempts && !life.aborted && !over(status); attempt++) {
        await this.ctx.clock.sleep(retry.delayMs(attempt - 1), life);
        if (life.aborted) break;
        status = await attemptOnce(attempt);
      }
    }).finally(() => {
      this.#pending--;
      if (this.#pending === 0) {
        const waiters = this.#waiters;
        this.#waiters = [];
        for (const w of waiters) w();
      }
    });
  }

  deliveries(): Delivery[] {
    return this.#log.slice();
  }

  drain(): Promise<void> {
    return this.#pending === 0 ? Promise.resolve() : new Promise<void>((r) => this.#waiters.push(r));
  }

  /** Drops every pending delivery and retry (a reset, or the process dying); `clearLog` also forgets the log. */
  abortAll(clearLog: boolean): void {
    this.#life.abort();
    this.#life = new AbortController();
    this.#chains.clear();
    if (clearLog) this.#log = [];
  }
}
