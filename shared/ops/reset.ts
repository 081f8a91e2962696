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
  const tenant = await loadTenant(sql, slug);
  const op = new Operation(sql, { action: "reset", actor: options.actor, tenant: slug, dryRun: !options.apply });
  return await withTenantLease(sql, { slug, action: "reset", actor: options.actor, operationId: op.id }, async () => {
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
          plan: [],
          steps: op.steps,
        };
      }
    }
    const before = {
      instance: state ? { name, state } : null,
      config: tenant.integration?.config ?? null,
    };
    const newConfig = expectedConfig(config, slug, {
      environment: tenant.integration?.config.environment,
    });
    const plan = [
      ...(state === "open" || state === "connecting" ? [`logout '${name}'`] : []),
      ...(state ? [`delete instance '${name}'`] : []),
      `create instance '${name}' with the tenant's webhook URL and token (v2: a header; v1.8: in the URL)`,
      `replace the integration row with ${JSON.stringify(newConfig)}`,
    ];
    const base = { action: "reset" as const, tenant: slug, operationId: op.id, dryRun: !options.apply, before, plan };
    if (!options.apply) {
      await op.record("plan", "planned", { before, after: { plan } });
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
      await op.run("replace_config", () =>
        sql.begin(async (tx) => {
          await tx`delete from public.tenant_integrations where tenant_id = ${tenant.id} and integration_type = 'whatsapp'`;
          await tx`
            insert into public.tenant_integrations (tenant_id, integration_type, config, is_active)
            values (${tenant.id}, 'whatsapp', ${tx.json(newConfig as never)}, true)`;
        }), { before: before.config, after: () => newConfig });
      return {
        ...base,
        ok: true,
        result: "ok",
        after: { instance: { name: created.name, state: created.state }, config: newConfig },
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
  });
}
