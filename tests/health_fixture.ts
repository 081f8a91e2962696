/**
 * @module
 * A health-check fixture with the simulator's real defaults (compressed clock), the local Slack receiver, and
 * tenants whose instances deliver their webhooks to the real receiver of the test stack (so connection.update events
 * reach api_logs and webhook_activity as in production). Settings can be changed for one test and are restored.
 */
import { type Simulator, type SimulatorOptions, startSimulator } from "../dev/evolution_sim/app.ts";
import { type Receivers, startReceivers } from "../dev/receivers.ts";
import type { Deps } from "../shared/deps.ts";
import { EvolutionClient } from "../shared/evolution/client.ts";
import { runHealthCheck } from "../shared/jobs/health_check.ts";
import { createTenant, testConfig, testDeps, testSql } from "./_helpers.ts";

/** The simulator, the receivers, deps on them, and helpers. */
export interface HealthFixture {
  sim: Simulator;
  rx: Receivers;
  deps: Deps;
  /** One health-check run scoped to `tenants`: its status and report. */
  run(tenants: string[]): Promise<Record<string, unknown>>;
  /** A tenant with its row and an instance in `state`, its webhook the tenant's own (events reach the receiver). */
  tenant(prefix: string, state?: "open" | "close" | "connecting"): Promise<{ slug: string; instance: string }>;
  /** Sets a maintenance setting for this fixture's life (restored by close). */
  set(key: string, value: unknown): Promise<void>;
  /** Slack messages that mention `needle`, as their fallback text. */
  slack(needle: string): string[];
  close(): Promise<void>;
}

export async function healthFixture(options: SimulatorOptions = {}): Promise<HealthFixture> {
  await resolveLeftoverPlatformAlerts();
  const sim = await startSimulator({ port: 0, timeScale: 0.05, ...options });
  const rx = await startReceivers();
  const env = {
    EVOLUTION_API_URL: sim.url,
    EVOLUTION_API_KEY: sim.apiKey,
    SLACK_WEBHOOK_URL: rx.slackUrl,
    ALERT_LOG: "false",
  };
  const evolution = new EvolutionClient(testConfig(env), {
    sql: testSql(),
    retry: { retries: 1, minDelayMs: 10, maxDelayMs: 20 },
    logs: { intervalMs: 50 },
  });
  const deps = testDeps({ env, evolution });
  const changed: string[] = [];
  const slugs: string[] = [];
  return {
    sim,
    rx,
    deps,
    async run(tenants) {
      const out = await runHealthCheck(deps, { runId: crypto.randomUUID(), input: { tenants } });
      await evolution.flushLogs();
      return { status: out.status, ...out.report };
    },
    async tenant(prefix, state = "open") {
      const t = await createTenant({ prefix });
      slugs.push(t.slug);
      const instance = `${deps.config.instancePrefix}${t.slug}`;
      const hook = await evolution.expectedWebhook(t.slug);
      sim.control.seedInstance(instance, { state, webhookUrl: hook.url, webhookHeaders: hook.headers });
      return { slug: t.slug, instance };
    },
    async set(key, value) {
      await testSql()`update maintenance.settings set value = ${testSql().json(value as never)} where key = ${key}`;
      changed.push(key);
    },
    slack: (needle) =>
      rx.control.received("slack").filter((m) => JSON.stringify(m.body).includes(needle)).map((m) =>
        String(m.body.text)
      ),
    async close() {
      if (changed.length) await testSql()`update maintenance.settings set value = null where key = any (${changed})`;
      await testSql()`delete from public.tenants where slug = any (${slugs})`;
      await evolution.flushLogs();
      await sim.close();
      await rx.close();
    },
  };
}

/**
 * Platform alerts an earlier test file left firing (its Evolution gone, a 3 s `GET /` timeout on a loaded machine)
 * inhibit this file's tenant alerts, and scoped runs never resolve them: each fixture starts without any.
 */
export async function resolveLeftoverPlatformAlerts() {
  await testSql()`update maintenance.alerts set status = 'resolved', resolved_at = now(),
    resolve_reason = 'left by an earlier test'
    where status = 'firing' and scope = 'platform'`;
}
