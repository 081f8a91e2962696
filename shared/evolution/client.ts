/**
 * @module
 * Evolution API client (placeholder until the Evolution issue lands: only server info).
 */
import type { Config } from "../config.ts";
import type { Sql } from "../db.ts";

/** One client for every call to Evolution. */
export class EvolutionClient {
  #url: string;
  #apiKey: string;
  #timeoutMs: number;
  constructor(config: Config, _options: { sql?: Sql } = {}) {
    this.#url = config.evolution.url;
    this.#apiKey = config.evolution.apiKey;
    this.#timeoutMs = config.evolution.timeoutMs;
  }
  /** `GET /`: server info. */
  async serverInfo(): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.#url}/`, {
      headers: { apikey: this.#apiKey },
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    return await res.json();
  }
}
