/**
 * @module
 * `reset` (the seed's reset procedure): disconnect, delete the instance, clear the config row, recreate from scratch.
 *
 * Requires `confirm` equal to the tenant slug (checked by the route before anything is read), and is a dry run
 * unless `apply: true`. The order avoids a half-applied reset: the config row is replaced (one transaction) only
 * after the new instance exists, so a failure leaves either the old integration row or the new one, never none; a
 * failed step stops the reset and says which. As a real server needs: a dead socket is restarted before the logout
 * and the delete go through, the webhook is switched off before the delete (so Evolution's delete waits on no
 * `remove.instance` delivery) and the create waits, bounded, until Evolution has freed the name.
 *
 * Reset owns only the config keys it derives from the slug (`instance_name`, `webhook_url`, and `environment` when
 * the row has none): every other key (a migrated tenant's `evolution_api_url` and `evolution_api_key_secret_id`, an
 * application's own keys) and `is_active` are kept, on the row it updates in place (re-read under the lease, in the
 * transaction that writes it). A disabled integration stays disabled. The plan shows the row before and after.
 */
import type { Deps } from "../deps.ts";
import { instanceName, type Slug } from "../naming.ts";
import { describeError, isEvolutionError } from "../evolution/errors.ts";
import {
  awaitNameFree,
  createWhenFree,
  DEAD_SOCKET_ADVICE,
  deleteInstance,
  logoutInstance,
  SocketStillDead,
} from "../evolution/lifecycle.ts";
import { withTenantLease } from "../tenant_lease.ts";
import { Operation, type OperationResult, StepFailed, type StepReport } from "./operation.ts";
import { clientFor, expectedConfig, type IntegrationConfig, loadTenant } from "./tenants.ts";

/** The integration row as reset shows it: whether it is active, and its config. */
export interface IntegrationRow {
  isActive: boolean;
  config: IntegrationConfig;
}

/** What `reset` answers. */
export interface ResetResponse {
  action: "reset";
  tenant: Slug;
  operationId: string;
  dryRun: boolean;
  ok: boolean;
  result: OperationResult;
  failedStep?: string;
  error?: string;
  /** What a person must do next, when the reset stopped on something only they can fix. */
  advice?: string;
  before: { instance: { name: string; state: string } | null; config: IntegrationConfig | null };
  after: { instance: { name: string; state: string } | null; config: IntegrationConfig | null } | null;
  /**
   * The integration row before, and after: as planned (a dry run, or a reset that stopped before writing it), or as
   * written. `before` is null when the tenant has no row (reset inserts one, active).
   */
  integration: { before: IntegrationRow | null; after: IntegrationRow; written: boolean } | null;
  plan: string[];
  steps: StepReport[];
}

/** Resets one tenant's WhatsApp integration (see the module doc). */
export async function resetTenant(
  deps: Deps,
  slug: Slug,
  options: { actor: string; apply: boolean },
): Promise<ResetResponse> {
  const { sql, config } = deps;
  await loadTenant(sql, slug); // 404 before any lease
  const op = new Operation(sql, { action: "reset", actor: options.actor, tenant: slug, dryRun: !options.apply });
  return await withTenantLease(
    sql,
    { slug, action: "reset", actor: options.actor, operationId: op.id },
    async (held) => {
      op.hold(held); // every step first confirms the lease is still this reset's
      const tenant = await loadTenant(sql, slug); // as it is now that no other operation can change it
      const evolution = await clientFor(deps, tenant);
      const name = instanceName(slug, config.instancePrefix);
      let state: string | null = null;
      try {
        state = await evolution.connectionState(name);
      } catch (error) {
        if (!isEvolutionError(error, "not_found")) {
          // Cannot even see the instance: do nothing rather than half a reset.
          const message = `Cannot read instance '${name}': ${describeError(error)}`;
          await op.record("inspect", "failed", { error: message });
          return {
            action: "reset",
            tenant: slug,
            operationId: op.id,
            dryRun: !options.apply,
            ok: false,
            result: "failed",
            failedStep: "inspect",
            error: message,
            before: { instance: null, config: tenant.integration?.config ?? null },
            after: null,
            integration: null,
            plan: [],
            steps: op.steps,
          };
        }
      }
      const before = {
        instance: state ? { name, state } : null,
        config: tenant.integration?.config ?? null,
      };
      const rowBefore: IntegrationRow | null = tenant.integration
        ? { isActive: tenant.integration.isActive, config: tenant.integration.config }
        : null;
      const planned: IntegrationRow = {
        isActive: rowBefore?.isActive ?? true,
        config: expectedConfig(config, slug, rowBefore?.config ?? {}),
      };
      const integration = { before: rowBefore, after: planned, written: false };
      const plan = [
        ...(state === "open" || state === "connecting" ? [`logout '${name}'`] : []),
        ...(state ? [`delete instance '${name}'`] : []),
        `create instance '${name}' with the tenant's webhook URL and token (v2: a header; v1.8: in the URL)`,
        rowBefore
          ? `update the integration row: config ${JSON.stringify(planned.config)} (instance_name, webhook_url ` +
            `rewritten, every other key kept), is_active stays ${planned.isActive}`
          : `insert the integration row: config ${JSON.stringify(planned.config)}, is_active true`,
      ];
      const base = {
        action: "reset" as const,
        tenant: slug,
        operationId: op.id,
        dryRun: !options.apply,
        before,
        integration,
        plan,
      };
      if (!options.apply) {
        await op.record("plan", "planned", { before: { ...before, integration: rowBefore }, after: { plan, planned } });
        return { ...base, ok: true, result: "planned", after: null, steps: op.steps };
      }

      try {
        if (state === "open" || state === "connecting") {
          // a dead socket refuses the logout: restart the instance, then log out again (lifecycle.ts)
          await op.run("logout", () => logoutInstance(evolution, name), { before: { state }, after: (v) => v });
        }
        if (state) {
          await op.run("delete_instance", async () => {
            const r = await deleteInstance(evolution, name, { recreate: true });
            return { ...r, ...(await awaitNameFree(evolution, name)) };
          }, { before: { instance: name, state }, after: (v) => v });
        }
        const created = await op.run("create_instance", () => createWhenFree(evolution, slug, name), {
          after: (c) => ({ instance: c.name, state: c.state, waitedMs: c.waitedMs }),
        });
        const written = await op.run("replace_config", () => writeRow(deps, { tenantId: tenant.id, slug }), {
          before: rowBefore,
          after: (row) => row,
        });
        return {
          ...base,
          ok: true,
          result: "ok",
          after: { instance: { name: created.name, state: created.state }, config: written.config },
          integration: { before: rowBefore, after: written, written: true },
          steps: op.steps,
        };
      } catch (error) {
        if (!(error instanceof StepFailed)) throw error;
        return {
          ...base,
          ok: false,
          result: "failed",
          failedStep: error.step,
          error: describeError(error.cause),
          ...(error.cause instanceof SocketStillDead || isEvolutionError(error.cause, "socket_closed")
            ? { advice: DEAD_SOCKET_ADVICE }
            : {}),
          after: null,
          steps: op.steps,
        };
      }
    },
  );
}

/**
 * The write of a reset: the row's own keys rewritten on the row as it is now (locked), everything else kept, in
 * place (same id, `is_active` untouched); a tenant without a row gets one (active, the column's default).
 */
async function writeRow(deps: Deps, target: { tenantId: string; slug: Slug }): Promise<IntegrationRow> {
  return await deps.sql.begin(async (tx) => {
    const [row] = await tx<{ id: string; config: unknown }[]>`
      select id, config from public.tenant_integrations
      where tenant_id = ${target.tenantId} and integration_type = 'whatsapp' for update`;
    const current = row?.config && typeof row.config === "object" && !Array.isArray(row.config)
      ? row.config as IntegrationConfig
      : {};
    const config = expectedConfig(deps.config, target.slug, current);
    const [saved] = row
      ? await tx<{ is_active: boolean | null }[]>`
        update public.tenant_integrations set config = ${tx.json(config as never)}, updated_at = now()
        where id = ${row.id} returning is_active`
      : await tx<{ is_active: boolean | null }[]>`
        insert into public.tenant_integrations (tenant_id, integration_type, config)
        values (${target.tenantId}, 'whatsapp', ${tx.json(config as never)}) returning is_active`;
    return { isActive: saved.is_active !== false, config };
  });
}
