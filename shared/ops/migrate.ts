/**
 * @module
 * `migrate` (seed procedure §2) a tenant's instance to another Evolution server (`apiUrl`, `apiKey`).
 *
 * Steps: back up the config row → check the new server (reachable, key accepted, name free) → create the instance
 * there (tenant's webhook and token) → verify its webhook → save the new config (URL in the row, key in Vault,
 * one transaction) → retire the old instance. A dry run (the default) stops after the check. If any step fails the
 * rollback is real, unlike the seed's comment: the config row is restored byte for byte and the stored key dropped,
 * the instance created on the new server is deleted, and the old instance is reconnected if it is no longer open;
 * the response names the failing step and each rollback step's outcome. Except when retiring the old instance
 * times out: its deletion may still land, so the tenant stays on the new server (`needs_human`, nothing undone).
 * Likewise when the old server cannot be reached at all and the caller said `leaveOldIfUnreachable` (moving away from
 * a dead server is the main reason to migrate); without it, an unreachable old server rolls the migration back.
 *
 * The new key is never logged, stored in plain text, put in the audit trail or returned: it lives in Vault only.
 */
import { normalizeBaseUrl } from "../config.ts";
import type { Deps } from "../deps.ts";
import { ValidationError } from "../errors.ts";
import type { EvolutionClient } from "../evolution/client.ts";
import { instanceName, type Slug } from "../naming.ts";
import { describeError, isEvolutionError } from "../evolution/errors.ts";
import { webhookCheck } from "../evolution/webhook_check.ts";
import { withTenantLease } from "../tenant_lease.ts";
import { connectSummary } from "./fix.ts";
import { Operation, type OperationResult, StepFailed, type StepReport } from "./operation.ts";
import { clientFor, type IntegrationConfig, loadTenant } from "./tenants.ts";

/** What `migrate` answers (no key anywhere). */
export interface MigrateResponse {
  action: "migrate";
  tenant: Slug;
  operationId: string;
  dryRun: boolean;
  ok: boolean;
  result: OperationResult;
  from: string;
  to: string;
  failedStep?: string;
  error?: string;
  before: { config: IntegrationConfig | null; oldInstanceState: string | null };
  after: { config: IntegrationConfig | null; oldInstanceState: string | null; newInstanceState: string | null } | null;
  plan: string[];
  steps: StepReport[];
  rollback: StepReport[];
}

/** Migrates one tenant to another Evolution server (see the module doc). */
export async function migrateTenant(
  deps: Deps,
  slug: Slug,
  options: { actor: string; apiUrl: string; apiKey: string; apply: boolean; leaveOldIfUnreachable?: boolean },
): Promise<MigrateResponse> {
  const { sql, config } = deps;
  const tenant = await loadTenant(sql, slug);
  if (!tenant.integration) {
    throw new ValidationError(
      `Cannot migrate tenant '${slug}' as it has no WhatsApp integration row: run fix first (config_missing)`,
      { code: "config_missing", details: [{ field: "slug", message: "no integration row" }] },
    );
  }
  const to = normalizeBaseUrl(options.apiUrl);
  const oldClient = await clientFor(deps, tenant);
  if (to === oldClient.baseUrl) {
    throw new ValidationError(`Invalid 'apiUrl': the tenant is already on ${to}`, {
      details: [{ field: "apiUrl", message: "must be another server than the tenant's current one" }],
    });
  }
  const newClient = deps.evolution.withCredentials(to, options.apiKey);
  const name = instanceName(slug, config.instancePrefix);
  const op = new Operation(sql, { action: "migrate", actor: options.actor, tenant: slug, dryRun: !options.apply });

  return await withTenantLease(sql, { slug, action: "migrate", actor: options.actor, operationId: op.id }, async () => {
    const rollback: StepReport[] = [];
    // 1. Backup (the row exactly as stored, re-read under the lease).
    const [row] = await sql<{ id: string; config: IntegrationConfig }[]>`
      select id, config from public.tenant_integrations
      where tenant_id = ${tenant.id} and integration_type = 'whatsapp'`;
    const backup = row.config;
    const oldState = await oldClient.connectionState(name).catch((
      e,
    ) => (isEvolutionError(e, "not_found") ? null : "unknown"));
    const before = { config: backup, oldInstanceState: oldState };
    const plan = [
      `check ${to}: reachable, key accepted, '${name}' free`,
      `create '${name}' on ${to} with the tenant's webhook URL and token header`,
      `verify its webhook`,
      `save the config: evolution_api_url = '${to}', the key in Vault`,
      `retire '${name}' on ${oldClient.baseUrl} (logout + delete)`,
    ];
    const base = {
      action: "migrate" as const,
      tenant: slug,
      operationId: op.id,
      dryRun: !options.apply,
      from: oldClient.baseUrl,
      to,
      before,
      plan,
    };
    await op.record("backup", "ok", { after: { config: backup, oldInstanceState: oldState } });

    let created = false;
    let savedSecret: string | null = null;
    let configSaved = false;
    let retireAttempted = false;
    try {
      // 2. Check the new server.
      await op.run("check_new_server", async () => {
        const info = await newClient.serverInfo();
        let taken = false;
        try {
          taken = (await newClient.fetchInstances({ instanceName: name })).some((i) => i.name === name);
        } catch (error) {
          if (!isEvolutionError(error, "not_found")) throw error;
        }
        if (taken) throw new Error(`instance '${name}' already exists on ${to}: not ours to replace`);
        return info;
      }, { after: (info) => ({ server: to, version: info.version }) });
      if (!options.apply) {
        await op.record("plan", "planned", { after: { plan } });
        return { ...base, ok: true, result: "planned", after: null, steps: op.steps, rollback };
      }

      // 3. Create on the new server.
      const inst = await op.run("create_on_new_server", () => newClient.createInstance(slug), {
        after: (c) => ({ instance: c.name, state: c.state, server: to }),
      });
      created = true;

      // 4. Verify the webhook the new server stored.
      await op.run("verify_new_instance", async () => {
        const check = webhookCheck(await newClient.findWebhook(name), await newClient.expectedWebhook(slug));
        if (!check.ok) throw new Error(`the new instance's webhook is not the expected one (${JSON.stringify(check)})`);
        return check;
      }, { after: (c) => c });

      // 5. Save the new config (key to Vault, URL to the row) in one transaction.
      const newConfig: IntegrationConfig = { ...backup, evolution_api_url: to };
      await op.run("save_config", () =>
        sql.begin(async (tx) => {
          const [s] = await tx<
            { id: string }[]
          >`select maintenance.store_evolution_key(${slug}, ${options.apiKey}) as id`;
          savedSecret = s.id;
          newConfig.evolution_api_key_secret_id = s.id;
          await tx`
            update public.tenant_integrations set config = ${tx.json(newConfig as never)}, updated_at = now()
            where id = ${row.id}`;
        }), { before: backup, after: () => newConfig });
      configSaved = true;

      // 6. Retire the old instance (Evolution logs it out first when open). A timeout leaves the outcome unknown:
      // the delete may land after we stopped waiting, so rolling back to the old instance could leave the tenant
      // with none anywhere. Then the tenant stays on the new server and a human checks the old one.
      retireAttempted = true;
      try {
        await op.run("retire_old_instance", async () => {
          try {
            await oldClient.deleteInstance(name);
          } catch (error) {
            if (!isEvolutionError(error, "not_found")) throw error;
          }
        }, { before: { server: oldClient.baseUrl, state: oldState }, after: () => ({ deleted: true }) });
      } catch (error) {
        if (!(error instanceof StepFailed)) throw error;
        const timedOut = isEvolutionError(error.cause, "timeout");
        const unreachable = isEvolutionError(error.cause, "unreachable") && options.leaveOldIfUnreachable === true;
        if (!timedOut && !unreachable) throw error;
        return {
          ...base,
          ok: false,
          result: "needs_human",
          failedStep: "retire_old_instance",
          error: timedOut
            ? `The tenant now uses ${to}, but retiring '${name}' on ${oldClient.baseUrl} timed out, so it may or ` +
              `may not be deleted: check that server and delete it if it is still there (${describeError(error.cause)})`
            : `The tenant now uses ${to}; ${oldClient.baseUrl} could not be reached to retire '${name}' ` +
              `(leaveOldIfUnreachable): delete it there when that server is back (${describeError(error.cause)})`,
          after: { config: newConfig, oldInstanceState: "unknown", newInstanceState: inst.state },
          steps: op.steps,
          rollback,
        };
      }

      // 7. The key the old config pointed at (a previous migration) is no longer needed.
      if (backup.evolution_api_key_secret_id) {
        await sql`select maintenance.drop_evolution_key(${backup.evolution_api_key_secret_id}::uuid)`.catch(() => {});
      }
      return {
        ...base,
        ok: true,
        result: "ok",
        after: { config: newConfig, oldInstanceState: null, newInstanceState: inst.state },
        steps: op.steps,
        rollback,
      };
    } catch (error) {
      const failedStep = error instanceof StepFailed ? error.step : "unknown";
      const message = describeError(error instanceof StepFailed ? error.cause : error);
      const complete = await rollBack(deps, op, rollback, {
        rowId: row.id,
        backup,
        savedSecret: configSaved ? savedSecret : null,
        restoreConfig: configSaved,
        created,
        newClient,
        oldClient,
        name,
        oldState,
        retireAttempted,
      });
      const [now] = await sql<{ config: IntegrationConfig }[]>`
        select config from public.tenant_integrations where id = ${row.id}`;
      const oldNow = await oldClient.connectionState(name).catch(() => null);
      return {
        ...base,
        ok: false,
        result: !rollback.length ? "failed" : complete ? "rolled_back" : "rollback_incomplete",
        failedStep,
        error: message,
        after: { config: now?.config ?? null, oldInstanceState: oldNow, newInstanceState: null },
        steps: op.steps,
        rollback,
      };
    }
  });
}

async function rollBack(
  deps: Deps,
  op: Operation,
  out: StepReport[],
  ctx: {
    rowId: string;
    backup: IntegrationConfig;
    savedSecret: string | null;
    restoreConfig: boolean;
    created: boolean;
    newClient: EvolutionClient;
    oldClient: EvolutionClient;
    name: string;
    oldState: string | null;
    retireAttempted: boolean;
  },
): Promise<boolean> {
  const { sql } = deps;
  let complete = true;
  const step = async (name: string, fn: () => Promise<unknown>) => {
    const start = op.steps.length;
    try {
      const detail = await fn();
      await op.record(`rollback.${name}`, "rolled_back", {
        after: detail,
        error: `rolled back after step '${op.steps.find((s) => s.result === "failed")?.step ?? "?"}' failed`,
      });
    } catch (error) {
      complete = false;
      await op.record(`rollback.${name}`, "failed", { error: describeError(error) }).catch(() => {});
    }
    out.push(...op.steps.slice(start));
  };
  if (ctx.restoreConfig) {
    await step("restore_config", async () => {
      await sql`update public.tenant_integrations set config = ${sql.json(ctx.backup as never)}, updated_at = now()
        where id = ${ctx.rowId}`;
      return { config: ctx.backup };
    });
  }
  if (ctx.savedSecret) {
    await step("drop_new_key", async () => {
      await sql`select maintenance.drop_evolution_key(${ctx.savedSecret}::uuid)`;
      return { dropped: true };
    });
  }
  if (ctx.created) {
    await step("delete_new_instance", async () => {
      try {
        await ctx.newClient.deleteInstance(ctx.name);
      } catch (error) {
        if (!isEvolutionError(error, "not_found")) throw error;
      }
      return { deleted: true, server: ctx.newClient.baseUrl };
    });
  }
  if (ctx.oldState && ctx.retireAttempted) {
    await step("old_instance", async () => {
      const now = await ctx.oldClient.connectionState(ctx.name);
      if (now === "open" || now === ctx.oldState) return { state: now, reconnected: false };
      const r = await ctx.oldClient.connect(ctx.name);
      return { state: now, reconnected: true, ...connectSummary(r) };
    });
  }
  return complete;
}
