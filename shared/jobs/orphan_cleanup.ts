/**
 * @module
 * The `orphan-cleanup` job (daily): prefixed Evolution instances that no WhatsApp integration row names, on every
 * enabled server of the fleet (`maintenance.evolution_servers`, one listing per server). Unlike the seed, which
 * deleted an orphan the moment it saw one (racing an instance being created), an orphan is deleted only when it has
 * stayed an orphan on its server for a grace period across runs (`maintenance.sight_orphans_on` records first/last
 * sighting per server), on that server only, and never:
 * - on a server whose listing failed in this run (its list would be incomplete: it is reported as unreachable, its
 *   sightings are kept as they were, and it is never read as "no instances"), nor when the database failed;
 * - an instance without the prefix (not ours);
 * - an instance named for a tenant that exists, whatever its slug's format (`revalya-Legacy_Co` of tenant
 *   `Legacy_Co`): on the tenant's own server its row is missing, and `whatsapp-ops fix` recreates the config. The rule
 *   is `tenantOfInstance` (naming.ts), the one isolation-audit applies too, and it is read again just before a delete;
 * - an instance of an existing tenant (by its name, or named by its row) on a server that is not the tenant's own:
 *   `misplaced`, reported with both servers and never sighted as an orphan, kept or deleted here. It is
 *   isolation-audit's `wrong_server_instance`, which removes it only as a duplicate of a live instance on the tenant's
 *   server.
 *
 * `apply` defaults to **true** here, the one exception to "destructive actions are dry runs unless asked": the
 * schedule sends `{}`, and a dry-run default would make the daily run a report that never cleans. The safety is the
 * grace period itself (two sightings in different runs, at least `graceHours` apart, on the same server) plus the
 * checks above, and every deletion is recorded in `maintenance.actions_audit` with its server. `{"apply": false}` only
 * reports (sightings are still recorded: observing is not destroying).
 */
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { recordAction } from "../audit.ts";
import { existingTenants, tenantOfInstance } from "../naming.ts";
import { describeError } from "../evolution/errors.ts";
import type { JobDefinition, JobOutcome } from "./runner.ts";
import { deleteInstance } from "../evolution/lifecycle.ts";
import { DEFAULT_SERVER } from "../evolution/servers.ts";
import { type BeingRemoved, listFleet, loadFleet, type ServerListing, tenantHomes } from "../evolution/fleet.ts";

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
  /** The registry name of the server it is on. */
  server: string;
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

/** An existing tenant's instance on a server that is not the tenant's: reported, never kept or deleted silently. */
export interface MisplacedInstance {
  instance: string;
  /** Where it is. */
  server: string;
  state: string | null;
  tenant: string;
  /** The tenant's own server (null: a URL no server is registered under). */
  tenantServer: string | null;
  /** Whether the tenant's own server lists the instance too (null: that server was not listed in this run). */
  onTenantServer: boolean | null;
  action: string;
  result: "misplaced";
}

/** One server in the report. */
export interface OrphanServerReport {
  name: string;
  url: string;
  isDefault: boolean;
  listed: number | null;
  prefixed: number | null;
  orphans: number;
  deleted: string[];
  misplaced: number;
  error: string | null;
}

/** Runs one orphan-cleanup pass (the job's logic, callable directly by tests and the CLI path). */
export async function runOrphanCleanup(
  deps: Deps,
  ctx: { runId: string; input: OrphanCleanupInput; actor?: string },
): Promise<JobOutcome> {
  const { sql, config } = deps;
  const { apply, graceHours } = ctx.input;
  const actor = ctx.actor ?? "job:orphan-cleanup";
  const prefix = config.instancePrefix;
  const base = { apply, graceHours, prefix };

  const fleet = await loadFleet(deps);
  const listings = await listFleet(deps, fleet, { prefix });
  const listed = listings.filter((l) => l.instances !== null);
  const unreachable = listings.filter((l) => l.instances === null);
  const listingError = unreachable.length
    ? unreachable.map((l) => l.error).join("; ")
    : listings.length
    ? null
    : "Cannot clean up Evolution: no enabled server in the registry";
  const serverReports: OrphanServerReport[] = listings.map((l) => ({
    name: l.server.name,
    url: l.server.url,
    isDefault: l.server.isDefault,
    listed: l.instances?.length ?? null,
    prefixed: l.instances ? prefixedOf(l, prefix).length : null,
    orphans: 0,
    deleted: [],
    misplaced: 0,
    error: l.error,
  }));
  if (!listed.length) {
    return {
      status: "error",
      error: listingError!,
      report: {
        ...base,
        deleted: [],
        error: listingError,
        orphans: [],
        misplaced: [],
        servers: serverReports,
        unreachable: unreachable.map((l) => l.server.name),
        disabled: fleet.disabled,
      },
    };
  }

  // Whose instance each listed name is, and which server each such tenant is on (one query each).
  const allNames = [...new Set(listed.flatMap((l) => prefixedOf(l, prefix).map((i) => i.name)))];
  const tenants = await existingTenants(sql, allNames, prefix);
  const claims = new Map<string, string>();
  if (allNames.length) {
    for (
      const r of await sql<{ slug: string; name: string }[]>`
        select t.slug, ti.config ->> 'instance_name' as name
        from public.tenant_integrations ti join public.tenants t on t.id = ti.tenant_id
        where ti.integration_type = 'whatsapp' and ti.config ->> 'instance_name' = any (${allNames}::text[])
        order by t.slug`
    ) if (!claims.has(r.name)) claims.set(r.name, r.slug);
  }
  const owners = new Map<string, string>();
  for (const name of allNames) {
    const owner = tenantOfInstance(name, prefix, tenants) ?? claims.get(name) ?? null;
    if (owner !== null) owners.set(name, owner);
  }
  const homes = await tenantHomes(deps, [...new Set(owners.values())]);
  const homeOf = (slug: string) => {
    const h = homes.get(slug);
    return h ? h.server : DEFAULT_SERVER;
  };
  const byServer = new Map(listings.map((l) => [l.server.name, l]));

  const orphans: OrphanReport[] = [];
  const misplaced: MisplacedInstance[] = [];
  const deleted: string[] = [];
  const failed: { instance: string; error: string; server: string }[] = [];
  const now = deps.now();
  for (const listing of listed) {
    const server = listing.server.name;
    const report = serverReports.find((r) => r.name === server)!;
    const here: { name: string; state: string }[] = [];
    for (const inst of prefixedOf(listing, prefix)) {
      const owner = owners.get(inst.name);
      const tenantServer = owner === undefined ? undefined : homeOf(owner);
      if (owner !== undefined && tenantServer !== server) {
        const home = tenantServer ? byServer.get(tenantServer) : undefined;
        const onTenantServer = home?.instances ? home.byName.has(inst.name) : null;
        misplaced.push({
          instance: inst.name,
          server,
          state: inst.state,
          tenant: owner,
          tenantServer: tenantServer ?? null,
          onTenantServer,
          action: `report: an instance of tenant '${owner}' on server '${server}', while the tenant is on ` +
            `${tenantServer ? `'${tenantServer}'` : "a URL no server is registered under"}` +
            (onTenantServer === true
              ? ` (which has it too): isolation-audit --apply removes this duplicate`
              : onTenantServer === false
              ? ` (which has no instance of it): move the tenant's link here (migrate), or 'ops fix ${owner}' ` +
                `and then isolation-audit --apply`
              : ` (not listed in this run): nothing is decided until it is`),
          result: "misplaced",
        });
        continue;
      }
      here.push({ name: inst.name, state: inst.state });
    }
    report.misplaced = misplaced.filter((m) => m.server === server).length;
    const found = await sightOrphans(deps, listing, { runId: ctx.runId, graceHours, now, here });
    for (const r of found) {
      const firstSeen = new Date(r.first_seen_at);
      const due = new Date(firstSeen.getTime() + graceHours * 3_600_000);
      const owner = tenantOfInstance(r.instance_name, prefix, tenants);
      const tenantExists = owner !== null || r.tenant_exists;
      const eligible = r.eligible && !tenantExists;
      orphans.push({
        instance: r.instance_name,
        server,
        state: r.state,
        firstSeenAt: firstSeen.toISOString(),
        lastSeenAt: new Date(r.last_seen_at).toISOString(),
        timesSeen: r.times_seen,
        tenantExists,
        eligible,
        action: tenantExists
          ? `keep: tenant '${owner}' exists without its integration row; run 'ops fix ${owner}' (config_missing)`
          : eligible
          ? `delete instance '${r.instance_name}' on server '${server}'`
          : `wait: deletable after ${due.toISOString()} and a second sighting`,
        result: tenantExists ? "kept" : eligible ? undefined : "waiting",
      });
    }
    report.orphans = found.length;

    let evolutionFailed: string | null = null;
    for (const o of orphans.filter((o) => o.server === server && o.eligible)) {
      const before = {
        instance: o.instance,
        server,
        state: o.state,
        firstSeenAt: o.firstSeenAt,
        timesSeen: o.timesSeen,
      };
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
        o.error = `not attempted: server '${server}' failed earlier in this run (${evolutionFailed})`;
        continue;
      }
      // The row may have appeared since the sighting (an instance being set up): check again just before deleting.
      const [{ claimed }] = await sql<{ claimed: boolean }[]>`
        select exists (select 1 from public.tenant_integrations
          where integration_type = 'whatsapp' and config ->> 'instance_name' = ${o.instance}) as claimed`;
      if (claimed) {
        o.result = "skipped";
        o.error = "an integration row names it now";
        await sql`select maintenance.forget_orphan_on(${server}, ${o.instance})`;
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
        const r = await deleteInstance(listing.server.client!, o.instance); // a dead socket is restarted first
        if (!r.deleted) {
          o.result = "skipped";
          o.error = "already gone";
          await sql`select maintenance.forget_orphan_on(${server}, ${o.instance})`;
          continue;
        }
        o.result = "deleted";
        deleted.push(o.instance);
        report.deleted.push(o.instance);
        await sql`select maintenance.forget_orphan_on(${server}, ${o.instance})`;
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
        failed.push({ instance: o.instance, error: message, server });
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
  }

  const beingRemoved: BeingRemoved[] = listed.flatMap((l) => l.beingRemoved);
  const report = {
    ...base,
    listed: listed.reduce((n, l) => n + l.instances!.length, 0),
    prefixed: listed.reduce((n, l) => n + prefixedOf(l, prefix).length, 0),
    orphanCount: orphans.length,
    eligibleCount: orphans.filter((o) => o.eligible).length,
    /** Names of the instances deleted (each server's are under `servers[].deleted`). */
    deleted,
    failed,
    orphans,
    misplaced,
    beingRemoved,
    servers: serverReports,
    /** Servers whose listing failed: nothing of theirs was sighted, forgotten or deleted. */
    unreachable: unreachable.map((l) => l.server.name),
    disabled: fleet.disabled,
    error: listingError,
  };
  if (failed.length) {
    return { status: "error", report, error: `Cannot delete ${failed.length} orphan(s): ${failed[0].error}` };
  }
  if (listingError) return { status: "degraded", report, error: listingError };
  return { status: "ok", report };
}

/** A listed server's prefixed instances (those being removed are already left out). */
function prefixedOf(listing: ServerListing, prefix: string) {
  return (listing.instances ?? []).filter((i) => i.name.startsWith(prefix));
}

interface SightingRow {
  instance_name: string;
  state: string | null;
  first_seen_at: Date;
  last_seen_at: Date;
  times_seen: number;
  tenant_exists: boolean;
  eligible: boolean;
}

/** One server's sighting step (`maintenance.sight_orphans_on`): the orphans among `here`, with their age. */
async function sightOrphans(
  deps: Deps,
  listing: ServerListing,
  options: { runId: string; graceHours: number; now: Date; here: { name: string; state: string }[] },
): Promise<SightingRow[]> {
  const { sql } = deps;
  return await sql<SightingRow[]>`
    select * from maintenance.sight_orphans_on(${listing.server.name}, ${listing.server.url},
      ${sql.json(options.here as never)}, ${options.runId}, make_interval(secs => ${options.graceHours * 3600}),
      ${options.now})`;
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
    const misplaced = Array.isArray(r.misplaced) ? r.misplaced.length : 0;
    const unreachable = Array.isArray(r.unreachable) ? r.unreachable : [];
    const servers = Array.isArray(r.servers) ? r.servers.length : 1;
    return `${r.listed} instance(s) listed on ${servers} server(s), ${r.orphanCount} orphan(s), ${deleted} deleted ` +
      `(grace ${r.graceHours} h)` + (misplaced ? `, ${misplaced} misplaced` : "") +
      (unreachable.length ? `; unreachable: ${unreachable.join(", ")}` : "");
  },
  isDryRun: (input) => input.apply === false,
  run({ deps, input, runId, trigger }) {
    return runOrphanCleanup(deps, { runId, input, actor: `job:orphan-cleanup:${trigger}` });
  },
};
