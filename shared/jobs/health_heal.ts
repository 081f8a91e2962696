/**
 * @module
 * health-check's opt-in self-healing (setting `health_check_self_heal`, off by default; the seed's "reconexão
 * automática"). For what this run found:
 *
 * - `socket_dead` (connected in memory, dead on the liveness probe): restart the instance, wait for its new socket,
 *   probe again (shared/evolution/lifecycle.ts);
 * - `instance_disconnected` in a transient close (a paired number, closed without a 401): `connect`, which
 *   reconnects with the stored session.
 *
 * Never a logged-out (401) instance: a person must scan a QR code (its alert says so, with the command). Each repair
 * spends the tenant's remediation budget (`maintenance.remediation_budget`, shared with fix/reconnect/reset), takes
 * the tenant's lease (an operator's action in progress wins: skipped), is audited (`heal.restart`,
 * `heal.reconnect`, actor `job:health-check`), and counts against the run's probe budget. A repair that worked turns
 * the tenant's result healthy for this run (`details.healed` says how); one that did not leaves it as found.
 */
import type { Deps } from "../deps.ts";
import type { EvolutionClient } from "../evolution/client.ts";
import { recordAction } from "../audit.ts";
import { describeError } from "../evolution/errors.ts";
import { restartDeadSocket, socketHealed } from "../evolution/lifecycle.ts";
import { tryTenantLease } from "../tenant_lease.ts";
import type { TenantResult } from "./health_tenants.ts";

/** How long a reconnect may take to open before the repair is judged not to have worked. */
const RECONNECT_WAIT_MS = 10_000;

/** One repair as the report shows it. */
export interface HealReport {
  tenant: string;
  action: "restart" | "reconnect";
  result: "ok" | "failed" | "skipped";
  detail?: Record<string, unknown>;
  error?: string;
}

/** What the tenant's result calls for, if anything. */
function repairFor(r: TenantResult): "restart" | "reconnect" | null {
  if (r.issue_code === "socket_dead") return "restart";
  if (r.issue_code === "instance_disconnected" && r.evolution_state === "close" && r.details?.paired === true) {
    return "reconnect";
  }
  return null;
}

/** Heals what can be healed in this run's results (mutating those it healed). */
export async function selfHeal(
  deps: Deps,
  results: TenantResult[],
  options: { clientOf: (slug: string) => EvolutionClient; runId: string; budget: number },
): Promise<{ calls: number; report: HealReport[] }> {
  const report: HealReport[] = [];
  let calls = 0;
  for (const r of results) {
    const action = repairFor(r);
    if (!action) continue;
    const name = String(r.details?.instance ?? "");
    if (calls >= options.budget) {
      report.push({ tenant: r.slug, action, result: "skipped", error: "the run's probe budget is spent" });
      continue;
    }
    const [budget] = await deps.sql<{ remaining: number; resets_at: Date | null }[]>`
      select remaining, resets_at from maintenance.remediation_budget(${r.slug})`;
    if (budget.remaining <= 0) {
      report.push({
        tenant: r.slug,
        action,
        result: "skipped",
        error: `remediation budget spent (next at ${budget.resets_at?.toISOString?.() ?? budget.resets_at})`,
      });
      continue;
    }
    const client = options.clientOf(r.slug);
    const audit = {
      actor: "job:health-check",
      action: `heal.${action}`,
      tenantSlug: r.slug,
      operationId: options.runId,
    };
    const attempt = await tryTenantLease(deps.sql, {
      slug: r.slug,
      action: `heal.${action}`,
      actor: audit.actor,
      operationId: options.runId,
      seconds: 60,
    }, async () => {
      try {
        if (action === "restart") {
          calls += 3; // restart, the state read(s) and the probe: at least three calls
          const rec = await restartDeadSocket(client, name);
          const healed = socketHealed(rec);
          await recordAction(deps.sql, {
            ...audit,
            before: { socket: "dead", instance: name },
            after: { ...rec },
            result: healed ? "ok" : "failed",
            error: healed ? null : `still dead after a restart (state ${rec.state}, probe ${rec.probe})`,
          });
          if (healed) heal(r, "restart", { socket_state: rec.probe === "live" ? "live" : undefined });
          return { result: healed ? "ok" : "failed", detail: { ...rec } } as const;
        }
        calls += 1;
        const c = await client.connect(name);
        // a QR to scan means the session is gone (a person must pair it); otherwise Evolution reconnects with the
        // stored session in the background: wait, bounded, for it to open
        const wantsScan = c.kind === "qr" && Boolean(c.qr.code || c.qr.base64 || c.qr.pairingCode);
        let state: string = c.kind === "state" ? c.state : wantsScan ? "qr" : "connecting";
        const until = performance.now() + RECONNECT_WAIT_MS;
        for (let pause = 200; !wantsScan && state !== "open" && performance.now() < until; pause *= 2) {
          await new Promise((r) => setTimeout(r, Math.min(pause, 2000)));
          calls++;
          state = await client.connectionState(name).catch(() => state);
        }
        const healed = state === "open";
        await recordAction(deps.sql, {
          ...audit,
          before: { state: r.evolution_state, instance: name },
          after: { state },
          result: healed ? "ok" : "failed",
          error: healed ? null : `connect answered ${state}`,
        });
        if (healed) heal(r, "reconnect", { live_state: "open" });
        return { result: healed ? "ok" : "failed", detail: { state } } as const;
      } catch (error) {
        const message = describeError(error);
        await recordAction(deps.sql, { ...audit, before: { instance: name }, result: "failed", error: message })
          .catch(() => {});
        return { result: "failed", error: message } as const;
      }
    });
    if (!attempt.acquired) {
      report.push({
        tenant: r.slug,
        action,
        result: "skipped",
        error: `${attempt.holder.action} by ${attempt.holder.actor} is running on it`,
      });
      continue;
    }
    report.push({ tenant: r.slug, action, ...attempt.value });
  }
  return { calls, report };
}

/** The tenant is healthy again after `how`: its result says so, and keeps what was found in `details.healed`. */
function heal(r: TenantResult, how: string, extra: Partial<TenantResult>): void {
  const found = { issue: r.issue_code, state: r.evolution_state };
  r.state = "healthy";
  r.evolution_state = "open";
  delete r.issue_code;
  delete r.issue;
  delete r.severity;
  Object.assign(r, Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined)));
  r.details = { ...r.details, healed: { by: how, found } };
}
