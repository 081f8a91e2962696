/**
 * @module
 * The `orphan-cleanup` job (daily): prefixed Evolution instances that no WhatsApp integration row names. Unlike the
 * seed, which deleted an orphan the moment it saw one (racing an instance being created), an orphan is deleted only
 * when it has stayed an orphan for a grace period across runs (`maintenance.sight_orphans` records first/last
 * sighting), and never:
 * - when the database or Evolution answered with an error in this run (the list would be incomplete);
 * - an instance without the prefix (not ours);
 * - an instance named for a tenant that exists, whatever its slug's format (`revalya-Legacy_Co` of tenant
 *   `Legacy_Co`): its row is missing, and `whatsapp-ops fix` recreates the config. The rule is
 *   `tenantOfInstance` (naming.ts), the one isolation-audit applies too, and it is read again just before a delete.
 *
 * `apply` defaults to **true** here, the one exception to "destructive actions are dry runs unless asked": the
 * schedule sends `{}`, and a dry-run default would make the daily run a report that never cleans. The safety is the
 * grace period itself (two sightings in different runs, at least `graceHours` apart) plus the checks above, and every
 * deletion is recorded in `maintenance.actions_audit`. `{"apply": false}` only reports (sightings are still recorded:
 * observing is not destroying).
 */
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { recordAction } from "../audit.ts";
import { existingTenants, tenantOfInstance } from "../naming.ts";
import { describeError } from "../evolution/errors.ts";
import type { JobDefinition, JobOutcome } from "./runner.ts";
import { deleteInstance } from "../evolution/lifecycle.ts";

/** Input accepted by `orphan-cleanup`. */
export const OrphanCleanupInput = z.object({
  /** Delete the orphans whose grace period has passed (default true; false = report only). */
  apply: z.boolean().default(true),
  /** How long an instance must stay an orphan, across runs, before it is deleted (default 24 h). */
  graceHours: z.number().min(0).max(24 * 90).default(24),
});
export type OrphanCleanupInput = z.infer<typeof OrphanCleanupInput>;

/** One orphan in the report. */
export interface OrphanReport {
  instance: string;
  state: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
  timesSeen: number;
  tenantExists: boolean;
  eligible: boolean;
  /** What this run did or would do. */
  action: string;
  result?: "deleted" | "planned" | "waiting" | "kept" | "failed" | "skipped";
  error?: string;
}

/** Runs one orphan-cleanup pass (the job's logic, callable directly by tests and the CLI path). */
export async function runOrphanCleanup(
  deps: Deps,
  ctx: { runId: string; input: OrphanCleanupInput; actor?: string },
): Promise<JobOutcome> {
  const { sql, evolution, config } = deps;
  const { apply, graceHours } = ctx.input;
  const actor = ctx.actor ?? "job:orphan-cleanup";
  const prefix = config.instancePrefix;
  const base = { apply, graceHours, prefix };

  let listed;
  try {
    listed = await evolution.fetchInstances();
  } catch (error) {
    return {
      status: "error",
      error: `Cannot list Evolution instances: ${describeError(error)}`,
      report: { ...base, deleted: [], error: `Cannot list Evolution instances: ${describeError(error)}`, orphans: [] },
    };
  }
  // An orphan we deleted stays listed until Evolution's own clean-up ends: not sighted again, reported apart.
  const listedOurs = listed.filter((i) => i.name.startsWith(prefix));
  const removing = listedOurs.length
    ? await sql<{ instance_name: string; deleted_at: Date }[]>`
      select instance_name, deleted_at from maintenance.instances_being_removed(${
      listedOurs.map((i) => i.name)
    }::text[])`
    : [];
  const beingRemoved = removing.map((r) => ({
    instance: r.instance_name,
    deletedAt: new Date(r.deleted_at).toISOString(),
  })).sort((a, b) => a.instance.localeCompare(b.instance));
  const prefixed = listedOurs.filter((i) => !removing.some((r) => r.instance_name === i.name));
  const now = deps.now();
  const rows = await sql<
    {
      instance_name: string;
      state: string | null;
      first_seen_at: Date;
      last_seen_at: Date;
      times_seen: number;
      tenant_exists: boolean;
      eligible: boolean;
    }[]
  >`
    select * from maintenance.sight_orphans(
      ${sql.json(prefixed.map((i) => ({ name: i.name, state: i.state })) as never)}, ${ctx.runId},
      make_interval(secs => ${graceHours * 3600}), ${now})`;

  // Whose instance each one is: the shared rule (the SQL side's `tenant_exists` is the same rule, prefix || slug =
  // name; either one keeps the instance).
  const tenants = await existingTenants(sql, rows.map((r) => r.instance_name), prefix);
  const orphans: OrphanReport[] = rows.map((r) => {
    const firstSeen = new Date(r.first_seen_at);
    const due = new Date(firstSeen.getTime() + graceHours * 3_600_000);
    const owner = tenantOfInstance(r.instance_name, prefix, tenants);
    const tenantExists = owner !== null || r.tenant_exists;
    const eligible = r.eligible && !tenantExists;
    return {
      instance: r.instance_name,
      state: r.state,
      firstSeenAt: firstSeen.toISOString(),
      lastSeenAt: new Date(r.last_seen_at).toISOString(),
      timesSeen: r.times_seen,
      tenantExists,
      eligible,
      action: tenantExists
        ? `keep: tenant '${owner}' exists without its integration row; run 'ops fix ${owner}' (config_missing)`
        : eligible
        ? `delete instance '${r.instance_name}'`
        : `wait: deletable after ${due.toISOString()} and a second sighting`,
      result: tenantExists ? "kept" : eligible ? undefined : "waiting",
    };
  });

  const deleted: string[] = [];
  const failed: { instance: string; error: string }[] = [];
  let evolutionFailed: string | null = null;
  for (const o of orphans.filter((o) => o.eligible)) {
    const before = { instance: o.instance, state: o.state, firstSeenAt: o.firstSeenAt, timesSeen: o.timesSeen };
    if (!apply) {
      o.result = "planned";
      await recordAction(sql, {
        actor,
        action: "orphan.delete_instance",
        operationId: ctx.runId,
        dryRun: true,
        before,
        after: { planned: "delete" },
        result: "planned",
      });
      continue;
    }
    if (evolutionFailed) {
      o.result = "skipped";
      o.error = `not attempted: Evolution failed earlier in this run (${evolutionFailed})`;
      continue;
    }
    // The row may have appeared since the sighting (an instance being set up): check again just before deleting.
    const [{ claimed }] = await sql<{ claimed: boolean }[]>`
      select exists (select 1 from public.tenant_integrations
        where integration_type = 'whatsapp' and config ->> 'instance_name' = ${o.instance}) as claimed`;
    if (claimed) {
      o.result = "skipped";
      o.error = "an integration row names it now";
      await sql`select maintenance.forget_orphan(${o.instance})`;
      continue;
    }
    const owner = tenantOfInstance(o.instance, prefix, await existingTenants(sql, [o.instance], prefix));
    if (owner !== null) {
      o.result = "kept";
      o.tenantExists = true;
      o.error = `tenant '${owner}' exists now: its instance is kept`;
      continue;
    }
    try {
      const r = await deleteInstance(evolution, o.instance); // a dead socket is restarted first
      if (!r.deleted) {
        o.result = "skipped";
        o.error = "already gone";
        await sql`select maintenance.forget_orphan(${o.instance})`;
        continue;
      }
      o.result = "deleted";
      deleted.push(o.instance);
      await sql`select maintenance.forget_orphan(${o.instance})`;
      await recordAction(sql, {
        actor,
        action: "orphan.delete_instance",
        operationId: ctx.runId,
        before,
        after: { deleted: true, ...(r.recovery ? { recovery: r.recovery } : {}) },
        result: "ok",
      });
    } catch (error) {
      const message = describeError(error);
      evolutionFailed = message;
      o.result = "failed";
      o.error = message;
      failed.push({ instance: o.instance, error: message });
      await recordAction(sql, {
        actor,
        action: "orphan.delete_instance",
        operationId: ctx.runId,
        before,
        result: "failed",
        error: message,
      });
    }
  }

  const report = {
    ...base,
    listed: listed.length,
    prefixed: prefixed.length,
    orphanCount: orphans.length,
    eligibleCount: orphans.filter((o) => o.eligible).length,
    deleted,
    failed,
    orphans,
    beingRemoved,
  };
  if (failed.length) {
    return { status: "error", report, error: `Cannot delete ${failed.length} orphan(s): ${failed[0].error}` };
  }
  return { status: "ok", report };
}

/** The `orphan-cleanup` job. */
export const orphanCleanup: JobDefinition<typeof OrphanCleanupInput> = {
  name: "orphan-cleanup",
  input: OrphanCleanupInput,
  schedule: "0 3 * * *",
  sampleInput: { apply: false },
  summarize(r) {
    if (!("orphanCount" in r)) return "";
    const deleted = Array.isArray(r.deleted) ? r.deleted.length : Number(r.deleted ?? 0);
    return `${r.listed} instance(s) listed, ${r.orphanCount} orphan(s), ${deleted} deleted (grace ${r.graceHours} h)`;
  },
  isDryRun: (input) => input.apply === false,
  run({ deps, input, runId, trigger }) {
    return runOrphanCleanup(deps, { runId, input, actor: `job:orphan-cleanup:${trigger}` });
  },
};
