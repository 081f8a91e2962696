/**
 * @module
 * `fix` and `reconnect` (the seed's troubleshooting solutions for a missing or disconnected instance).
 *
 * `fix` diagnoses, then repairs what can be repaired without a human: recreate a missing instance (with the
 * tenant's webhook and token) or config row, correct a config row or an instance webhook, reconnect an instance
 * that is not open, restart one whose WhatsApp socket is dead (the probe says whether that healed it; a socket a
 * restart does not heal needs the Evolution process restarted). What needs a human (a refused API key, Evolution down or unstable, a number that keeps being
 * logged out) is reported with advice, never "fixed" by the seed's fallback of a full reset. Instance creation and
 * reconnection spend the tenant's remediation budget (`maintenance.remediation_budget`, default 3 per hour, counted
 * from the audit trail), so repeated fixes cannot loop into a QR storm; past the budget those steps are skipped.
 */
import { AppError, ConflictError } from "../errors.ts";
import type { Deps } from "../deps.ts";
import type { ConnectResult } from "../evolution/types.ts";
import { instanceName, redactWebhookUrl, type Slug } from "../naming.ts";
import { describeError, isEvolutionError } from "../evolution/errors.ts";
import { withTenantLease } from "../tenant_lease.ts";
import { diagnose, type Diagnosis, type Problem } from "./diagnose.ts";
import { Operation, type OperationResult, StepFailed, type StepReport } from "./operation.ts";
import {
  clientFor,
  expectedConfig,
  loadTenant,
  type NewPlacement,
  placeNewInstance,
  type TenantView,
} from "./tenants.ts";
import { createWhenFree, DEAD_SOCKET_ADVICE, restartDeadSocket, socketHealed } from "../evolution/lifecycle.ts";
import { linkedServer } from "../evolution/servers.ts";

/** The tenant's remediation budget, as `maintenance.remediation_budget` computes it. */
export interface Budget {
  used: number;
  max: number;
  remaining: number;
  windowMinutes: number;
  resetsAt: string | null;
}

/** Reads the tenant's remediation budget. */
export async function remediationBudget(deps: Deps, slug: Slug): Promise<Budget> {
  const [b] = await deps.sql<
    { used: number; max_allowed: number; remaining: number; window_minutes: number; resets_at: Date | null }[]
  >`select * from maintenance.remediation_budget(${slug})`;
  return {
    used: b.used,
    max: b.max_allowed,
    remaining: b.remaining,
    windowMinutes: b.window_minutes,
    resetsAt: b.resets_at ? new Date(b.resets_at).toISOString() : null,
  };
}

const ADVICE: Partial<Record<Problem, string>> = {
  invalid_api_key:
    "Evolution refused the API key: renew EVOLUTION_API_KEY (function secrets) with the server's AUTHENTICATION_API_KEY",
  api_unreachable: "Evolution is unreachable: check the server and the network; nothing was changed",
  api_error: "Evolution answered with an error: check its logs, then run fix again",
  api_unstable: "Evolution is unstable: wait for it to settle (see health-check), then run fix again",
  frequent_disconnections:
    "the connection keeps dropping: if the drops are logouts (terminalCloses, reason 401), check WhatsApp > Linked " +
    "devices on the phone; if they are transient (reason 200, no close), check the Evolution server's network and " +
    "logs; if it persists, reset the integration",
  instance_unauthorized:
    "Evolution refused the key for this instance while accepting it for the listing (its intermittent 401, " +
    "evolution-api#2356, or a proxy dropping the apikey header on some routes): wait a few minutes and run diagnose again",
  slow_api: "Evolution calls for this tenant are slow: check the server's load and the network",
  high_error_rate: "many Evolution calls for this tenant fail: see errorsByType in the diagnosis",
};

/** What `fix` answers. */
export interface FixResponse {
  action: "fix";
  tenant: Slug;
  operationId: string;
  dryRun: boolean;
  ok: boolean;
  result: OperationResult;
  diagnosis: Diagnosis;
  steps: StepReport[];
  needsHuman: { problem: Problem; advice: string }[];
  budget: Budget;
}

type FixStep = "create_instance" | "create_config" | "update_config" | "set_webhook" | "reconnect";
const BUDGETED: FixStep[] = ["create_instance", "reconnect"];

/** Diagnoses and repairs one tenant (see the module doc). `apply: false` returns the plan only. */
export async function fixTenant(
  deps: Deps,
  slug: Slug,
  options: { actor: string; apply?: boolean },
): Promise<FixResponse> {
  const apply = options.apply ?? true;
  const tenant = await loadTenant(deps.sql, slug);
  const op = new Operation(deps.sql, { action: "fix", actor: options.actor, tenant: slug, dryRun: !apply });
  return await withTenantLease(
    deps.sql,
    { slug, action: "fix", actor: options.actor, operationId: op.id },
    async (held) => {
      op.hold(held);
      const diagnosis = await diagnose(deps, slug, { tenant });
      const problems = new Set(diagnosis.problems);
      const plan: FixStep[] = [];
      if (problems.has("instance_not_found")) plan.push("create_instance");
      if (problems.has("config_missing")) plan.push("create_config");
      if (problems.has("config_mismatch")) plan.push("update_config");
      if (problems.has("webhook_mismatch")) plan.push("set_webhook");
      if (problems.has("not_connected") || problems.has("socket_dead")) plan.push("reconnect");
      const needsHuman = diagnosis.problems.filter((p) => ADVICE[p]).map((p) => ({ problem: p, advice: ADVICE[p]! }));

      let budget = await remediationBudget(deps, slug);
      const base = { action: "fix" as const, tenant: slug, operationId: op.id, dryRun: !apply, diagnosis, needsHuman };
      if (!plan.length) {
        const result: OperationResult = needsHuman.length ? "needs_human" : "nothing_to_do";
        return { ...base, ok: result === "nothing_to_do", result, steps: op.steps, budget };
      }
      if (!apply) {
        for (const s of plan) await op.record(s, "planned", { detail: { budgeted: BUDGETED.includes(s) } });
        return { ...base, ok: true, result: "planned", steps: op.steps, budget };
      }

      const evolution = await clientFor(deps, tenant);
      const name = instanceName(slug, deps.config.instancePrefix);
      let allowance = budget.remaining;
      let exhausted = false;
      let failed = false;
      for (const s of plan) {
        if (BUDGETED.includes(s)) {
          if (allowance <= 0) {
            exhausted = true;
            await op.record(s, "skipped", {
              detail: { reason: "remediation budget exhausted", used: budget.used, max: budget.max },
              after: { reason: "remediation budget exhausted", resetsAt: budget.resetsAt },
            });
            continue;
          }
          allowance--;
        }
        try {
          const left = await runFixStep(deps, op, s, {
            tenant,
            name,
            evolution,
            deadSocket: problems.has("socket_dead"),
          });
          if (left) needsHuman.push(left);
        } catch (error) {
          if (!(error instanceof StepFailed)) throw error;
          failed = true;
          break;
        }
      }
      budget = await remediationBudget(deps, slug);
      const result: OperationResult = failed
        ? "failed"
        : exhausted
        ? "budget_exhausted"
        : needsHuman.length
        ? "needs_human"
        : "ok";
      return { ...base, ok: result === "ok", result, steps: op.steps, budget };
    },
  );
}

/** Runs one step of the plan; answers what it could not repair (for `needsHuman`), if anything. */
async function runFixStep(
  deps: Deps,
  op: Operation,
  step: FixStep,
  ctx: { tenant: TenantView; name: string; evolution: Deps["evolution"]; deadSocket: boolean },
): Promise<{ problem: Problem; advice: string } | void> {
  const { sql, config } = deps;
  const slug = ctx.tenant.slug;
  switch (step) {
    case "create_instance": {
      // A tenant with no server yet gets one (the least-loaded enabled, non-draining server), linked before the
      // create: should the create fail, the next fix creates it on that same server, never on a second one.
      let placed: NewPlacement | null = null;
      await op.run(step, async () => {
        const linked = await linkedServer(sql, ctx.tenant.id);
        if (linked && !linked.enabled) {
          throw new ConflictError(
            `Cannot create the instance of '${slug}' on Evolution server '${linked.name}' as that server is ` +
              `disabled: enable it (npm run ops -- servers enable ${linked.name}) or move the tenant (migrate)`,
          );
        }
        placed = await placeNewInstance(deps, ctx.tenant);
        await placed?.commit();
        return await createWhenFree(placed?.client ?? ctx.evolution, slug, ctx.name);
      }, {
        before: { instance: null },
        after: (c) => ({
          instance: c.name,
          state: c.state,
          waitedMs: c.waitedMs,
          ...(placed ? { placedOn: (placed as NewPlacement).server.name } : {}),
        }),
      });
      return;
    }
    case "create_config": {
      const want = expectedConfig(config, slug);
      await op.run(step, async () => {
        await sql`
          insert into public.tenant_integrations (tenant_id, integration_type, config, is_active)
          values (${ctx.tenant.id}, 'whatsapp', ${sql.json(want as never)}, true)
          on conflict (tenant_id, integration_type) do nothing`;
      }, { before: null, after: () => want });
      return;
    }
    case "update_config": {
      const before = ctx.tenant.integration?.config ?? {};
      const want = expectedConfig(config, slug, before);
      await op.run(step, async () => {
        await sql`
          update public.tenant_integrations set config = ${sql.json(want as never)}, updated_at = now()
          where tenant_id = ${ctx.tenant.id} and integration_type = 'whatsapp'`;
      }, { before, after: () => want });
      return;
    }
    case "set_webhook": {
      const hook = await ctx.evolution.expectedWebhook(slug);
      await op.run(step, () => ctx.evolution.setWebhook(ctx.name, { url: hook.url, headers: hook.headers }), {
        after: (w) => ({ url: redactWebhookUrl(w.url), enabled: w.enabled }),
      });
      return;
    }
    case "reconnect": {
      if (!ctx.deadSocket) {
        await op.run(step, () => ctx.evolution.connect(ctx.name), { after: connectSummary });
        return;
      }
      // connected in memory, dead on the wire: connect would answer "open" and change nothing; restart is the remedy
      const r = await op.run(step, () => restartDeadSocket(ctx.evolution, ctx.name), {
        before: { socket: "dead" },
        after: (r) => ({ restarted: r.restarted, state: r.state, socket: r.probe }),
      });
      if (!socketHealed(r)) return { problem: "socket_dead", advice: DEAD_SOCKET_ADVICE };
      return;
    }
  }
}

/** A connect/restart result without the QR payload (for the audit). */
export function connectSummary(r: ConnectResult): Record<string, unknown> {
  return r.kind === "state" ? { state: r.state } : { qr: true, qrCount: r.qr.count, pairingCode: r.qr.pairingCode };
}

/** What `reconnect` answers. */
export interface ReconnectResponse {
  action: "reconnect";
  tenant: Slug;
  operationId: string;
  ok: boolean;
  result: OperationResult;
  instance: string;
  connect: ConnectResult | null;
  /** The socket of an instance connect found open: `live`, `dead` (restarted), `unknown` (v1.8, no probe). */
  socket?: string;
  /** What a person must do next, when the reconnect could not. */
  advice?: string;
  error?: string;
  steps: StepReport[];
  budget: Budget;
}

/**
 * `reconnect` (seed: "forçando reconexão"): `GET /instance/connect` on the tenant's instance, answering the state
 * or the QR code to scan. Spends the remediation budget: past it, 429 (recorded as refused). An instance connect
 * finds already open is asked over its socket (the liveness probe): a dead one is restarted, within the same
 * remediation, and the probe says whether that healed it.
 */
export async function reconnectTenant(deps: Deps, slug: Slug, options: { actor: string }): Promise<ReconnectResponse> {
  const tenant = await loadTenant(deps.sql, slug);
  const op = new Operation(deps.sql, { action: "reconnect", actor: options.actor, tenant: slug, dryRun: false });
  return await withTenantLease(
    deps.sql,
    { slug, action: "reconnect", actor: options.actor, operationId: op.id },
    async (held) => {
      op.hold(held);
      const budget = await remediationBudget(deps, slug);
      if (budget.remaining <= 0) {
        const message =
          `Cannot reconnect tenant '${slug}' as its remediation budget is spent (${budget.used} of ${budget.max} ` +
          `in ${budget.windowMinutes} min): next allowed at ${budget.resetsAt}`;
        await op.record("connect", "refused", { error: message, after: budget });
        throw new AppError("remediation_budget_exhausted", 429, message, { details: budget });
      }
      const evolution = await clientFor(deps, tenant);
      const name = instanceName(slug, deps.config.instancePrefix);
      let connect: ConnectResult | null = null;
      let error: string | undefined;
      let socket: string | undefined;
      let advice: string | undefined;
      try {
        connect = await op.run("connect", () => evolution.connect(name), { after: connectSummary });
        if (connect.kind === "state" && connect.state === "open") {
          socket = await evolution.probeSocket(name);
          if (socket === "dead") {
            const r = await op.run("restart", () => restartDeadSocket(evolution, name), {
              before: { socket: "dead" },
              after: (r) => ({ restarted: r.restarted, state: r.state, socket: r.probe }),
            });
            socket = r.probe;
            if (!socketHealed(r)) {
              error = "the WhatsApp socket is still dead after a restart of the instance";
              advice = DEAD_SOCKET_ADVICE;
            }
          }
        }
      } catch (e) {
        const cause = (e as StepFailed).cause;
        if (isEvolutionError(cause, "not_found")) {
          throw new ConflictError(`Cannot reconnect tenant '${slug}' as instance '${name}' does not exist: run fix`, {
            code: "instance_not_found",
            details: { instance: name },
          });
        }
        error = describeError(cause);
      }
      // this attempt's audit row is written: the budget below already counts it
      const after = await remediationBudget(deps, slug);
      return {
        action: "reconnect",
        tenant: slug,
        operationId: op.id,
        ok: !error,
        result: error ? "failed" : "ok",
        instance: name,
        connect,
        ...(socket ? { socket } : {}),
        ...(advice ? { advice } : {}),
        error,
        steps: op.steps,
        budget: after,
      };
    },
  );
}
