/**
 * @module
 * Shared set-up of the isolation, orphan and whatsapp-ops tests: an in-process Evolution simulator, deps pointing
 * at it and at the real test database (fast client retries), and helpers to seed tenants with correct instances.
 */
import { type Simulator, type SimulatorOptions, startSimulator } from "../dev/evolution_sim/app.ts";
import type { Deps } from "../shared/deps.ts";
import { EvolutionClient } from "../shared/evolution/client.ts";
import { createTenant, testConfig, testDeps, testSql, uniqueSlug } from "./_helpers.ts";

/** A simulator and deps bound to it. */
export interface OpsFixture {
  sim: Simulator;
  deps: Deps;
  /** Seeds a correct instance for `slug` (right name, webhook URL and token header). */
  seedCorrect(slug: string, state?: "open" | "connecting" | "close"): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts a simulator (its real defaults; `sim` adds options, e.g. `version: "1.8.6"`) and builds deps on it. `env`
 * overrides the configuration (e.g. a wrong key).
 */
export async function opsFixture(
  env: Record<string, string> = {},
  options: SimulatorOptions = {},
): Promise<OpsFixture> {
  const sim = await startSimulator({ port: 0, webhookRetryDelaysMs: [50, 100], ...options });
  const config = testConfig({ EVOLUTION_API_URL: sim.url, EVOLUTION_API_KEY: sim.apiKey, ...env });
  const evolution = new EvolutionClient(config, {
    sql: testSql(),
    retry: { retries: 1, minDelayMs: 10, maxDelayMs: 20 },
    logs: { intervalMs: 50 },
  });
  const deps = testDeps({ env: { EVOLUTION_API_URL: sim.url, EVOLUTION_API_KEY: sim.apiKey, ...env }, evolution });
  return {
    sim,
    deps,
    async seedCorrect(slug, state = "open") {
      const name = `${deps.config.instancePrefix}${slug}`;
      const hook = await deps.evolution.expectedWebhook(slug);
      sim.control.seedInstance(name, { state, webhookUrl: hook.url, webhookHeaders: hook.headers });
      return name;
    },
    async close() {
      await deps.evolution.flushLogs();
      await sim.close();
    },
  };
}

/** A tenant with its row and a correct, open instance. */
export async function healthyTenant(f: OpsFixture, prefix = "ok") {
  const t = await createTenant({ prefix });
  const instance = await f.seedCorrect(t.slug);
  return { ...t, instance };
}

/** The stored integration config of a tenant (null without a row). */
export async function configOf(slug: string): Promise<Record<string, unknown> | null> {
  const [row] = await testSql()<{ config: Record<string, unknown> }[]>`
    select ti.config from public.tenant_integrations ti join public.tenants t on t.id = ti.tenant_id
    where t.slug = ${slug} and ti.integration_type = 'whatsapp'`;
  return row?.config ?? null;
}

/** A snapshot of everything about one tenant the actions may touch: row, instance (state, webhook), for comparisons. */
export async function snapshot(f: OpsFixture, slug: string) {
  const name = `${f.deps.config.instancePrefix}${slug}`;
  const inst = f.sim.control.instances().find((i) => i.name === name) ?? null;
  return { config: await configOf(slug), instance: inst };
}

/** The audit rows of a tenant, oldest first. */
export async function auditOf(slug: string) {
  return await testSql()<{ action: string; result: string; dry_run: boolean; error: string | null; after: unknown }[]>`
    select action, result, dry_run, error, after from maintenance.actions_audit where tenant_slug = ${slug} order by id`;
}

export { uniqueSlug };

/** POSTs to the in-process whatsapp-ops app; returns status and JSON. */
export async function opsCall(
  app: { request: (path: string, init: RequestInit) => Response | Promise<Response> },
  f: OpsFixture,
  action: string,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const res = await app.request(`/whatsapp-ops/${action}`, {
    method: "POST",
    headers: { "content-type": "application/json", apikey: f.deps.config.secretKey, ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  // deno-lint-ignore no-explicit-any
  return { status: res.status, json: JSON.parse(text) as any, text };
}
