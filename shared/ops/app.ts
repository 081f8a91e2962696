/**
 * @module
 * The `whatsapp-ops` app: on-demand diagnose / fix / reconnect / pairing-code / reset / migrate of one tenant, the fleet's
 * Evolution servers (`/servers/{list,register,enable,disable,drain,undrain,remove}`, `./servers.ts`), plus a status
 * read for the operator CLI. One Hono route per action; bodies are zod-validated (slug via `Slug`, unknown fields
 * refused) so bad input is a 400 naming the field; an unknown tenant is a 404; a second changing action on a tenant
 * while one runs is a 409; a spent remediation budget is a 429. An action that ran answers 200 with its report
 * (`ok`, `result`, the steps), failed or rolled back included.
 *
 * The rule for destructive actions, the same everywhere (jobs included): nothing is destroyed unless the body says
 * `"apply": true`; `reset` also needs `"confirm"` equal to the slug. `fix` and `reconnect` destroy nothing and act
 * by default (`fix` takes `"apply": false` for the plan only); `servers/disable` and `servers/remove` are plans
 * unless `"apply": true`, and remove needs `"confirm"` equal to the server's name. Who asked goes to the audit from
 * the `x-ops-actor` header (the CLI sends `cli:<user>@<host>`).
 */
import { z } from "zod";
import type { Hono } from "hono";
import type { Deps } from "../deps.ts";
import { listActions, recordAction } from "../audit.ts";
import { ValidationError } from "../errors.ts";
import { createFunctionApp, readJson, requireSecretKey } from "../http.ts";
import { Slug } from "../naming.ts";
import { diagnose } from "./diagnose.ts";
import { fixTenant, reconnectTenant } from "./fix.ts";
import { migrateTenant } from "./migrate.ts";
import { PairingCodeBody, pairingCodeTenant } from "./pairing.ts";
import { resetTenant } from "./reset.ts";
import { actorFrom, loadTenant } from "./tenants.ts";
import { ensureDefaultServer, ServerUrl } from "../evolution/servers.ts";
import {
  changeServer,
  registerServer,
  removeServer,
  ServerDisableBody,
  serverList,
  ServerListBody,
  ServerNameBody,
  ServerRegisterBody,
  ServerRemoveBody,
} from "./servers.ts";

/** `POST /diagnose` */
export const DiagnoseBody = z.object({ slug: Slug, windowHours: z.number().int().min(1).max(24 * 30).optional() })
  .strict();
/** `POST /fix` */
export const FixBody = z.object({ slug: Slug, apply: z.boolean().default(true) }).strict();
/** `POST /reconnect` */
export const ReconnectBody = z.object({ slug: Slug }).strict();
/** `POST /reset` */
export const ResetBody = z.object({
  slug: Slug,
  confirm: z.string().max(200).optional(),
  apply: z.boolean().default(false),
}).strict();
/** `POST /migrate` */
export const MigrateBody = z.object({
  slug: Slug,
  apiUrl: ServerUrl,
  apiKey: z.string().min(1, "must not be empty").max(512, "must be at most 512 characters"),
  apply: z.boolean().default(false),
  /** Moving away from a dead server: if the old server cannot be reached to retire the instance, keep the tenant on
   * the new server (`needs_human`: delete the old instance when that server is back) instead of rolling back. */
  leaveOldIfUnreachable: z.boolean().default(false),
}).strict();
/** `POST /status` */
export const StatusBody = z.object({ slug: Slug.optional(), limit: z.number().int().min(1).max(200).default(20) })
  .strict();

/** Builds the whatsapp-ops app. */
export function createOpsApp(deps: Deps): Hono {
  const app = createFunctionApp("whatsapp-ops");
  app.use("*", requireSecretKey(deps.config.secretKeys, { supabaseUrl: deps.config.supabaseUrl }));
  // Evolution calls are logged through a buffer: write it before answering.
  app.use("*", async (_c, next) => {
    try {
      await next();
    } finally {
      await deps.evolution.flushLogs();
    }
  });
  // the EVOLUTION_API_URL server in the fleet registry: on the first authenticated call of the process
  app.use("*", async (_c, next) => {
    await ensureDefaultServer(deps);
    await next();
  });

  app.post("/diagnose", async (c) => {
    const body = await readJson(c, DiagnoseBody);
    return c.json({ action: "diagnose", ...(await diagnose(deps, body.slug, { windowHours: body.windowHours })) });
  });

  app.post("/fix", async (c) => {
    const body = await readJson(c, FixBody);
    return c.json(
      await fixTenant(deps, body.slug, { actor: actorFrom(c.req.header("x-ops-actor")), apply: body.apply }),
    );
  });

  app.post("/reconnect", async (c) => {
    const body = await readJson(c, ReconnectBody);
    return c.json(await reconnectTenant(deps, body.slug, { actor: actorFrom(c.req.header("x-ops-actor")) }));
  });

  app.post("/pairing-code", async (c) => {
    const body = await readJson(c, PairingCodeBody);
    return c.json(
      await pairingCodeTenant(deps, body.slug, { actor: actorFrom(c.req.header("x-ops-actor")), number: body.number }),
    );
  });

  app.post("/reset", async (c) => {
    const body = await readJson(c, ResetBody);
    const actor = actorFrom(c.req.header("x-ops-actor"));
    if (body.confirm !== body.slug) {
      // Refused before anything is read or changed; recorded when the tenant exists (someone tried).
      const shown = body.confirm === undefined ? "missing" : `'${body.confirm.slice(0, 80)}'`;
      const tenant = await loadTenant(deps.sql, body.slug);
      await recordAction(deps.sql, {
        actor,
        action: "reset.confirm",
        tenantSlug: tenant.slug,
        dryRun: !body.apply,
        result: "refused",
        error: `confirm ${shown} does not equal the slug`,
      });
      throw new ValidationError(
        `Cannot reset integration as 'confirm' must equal the tenant slug: current value is ${shown}`,
        { code: "confirm_mismatch", details: [{ field: "confirm", message: `must equal '${body.slug}'` }] },
      );
    }
    return c.json(await resetTenant(deps, body.slug, { actor, apply: body.apply }));
  });

  app.post("/migrate", async (c) => {
    const body = await readJson(c, MigrateBody);
    return c.json(
      await migrateTenant(deps, body.slug, {
        actor: actorFrom(c.req.header("x-ops-actor")),
        apiUrl: body.apiUrl,
        apiKey: body.apiKey,
        apply: body.apply,
        leaveOldIfUnreachable: body.leaveOldIfUnreachable,
      }),
    );
  });

  app.post("/servers/list", async (c) => {
    await readJson(c, ServerListBody);
    return c.json(await serverList(deps));
  });

  app.post("/servers/register", async (c) => {
    const body = await readJson(c, ServerRegisterBody);
    return c.json(await registerServer(deps, body, { actor: actorFrom(c.req.header("x-ops-actor")) }));
  });

  for (const verb of ["enable", "drain", "undrain"] as const) {
    app.post(`/servers/${verb}`, async (c) => {
      const body = await readJson(c, ServerNameBody);
      return c.json(await changeServer(deps, verb, { actor: actorFrom(c.req.header("x-ops-actor")), name: body.name }));
    });
  }

  app.post("/servers/disable", async (c) => {
    const body = await readJson(c, ServerDisableBody);
    return c.json(
      await changeServer(deps, "disable", {
        actor: actorFrom(c.req.header("x-ops-actor")),
        name: body.name,
        apply: body.apply,
      }),
    );
  });

  app.post("/servers/remove", async (c) => {
    const body = await readJson(c, ServerRemoveBody);
    return c.json(await removeServer(deps, body, { actor: actorFrom(c.req.header("x-ops-actor")) }));
  });

  app.post("/status", async (c) => {
    const body = await readJson(c, StatusBody);
    if (body.slug) await loadTenant(deps.sql, body.slug);
    // every job's latest finished run, and its health as the dead-man check judges it (maintenance.job_health)
    const jobs = await deps.sql<
      {
        job: string;
        status: string;
        started_at: Date;
        duration_ms: number | null;
        dry_run: boolean;
        error: string;
        schedule: string | null;
        last_success_at: Date | null;
        next_due_at: Date | null;
        expected_by: Date | null;
        missed: boolean | null;
      }[]
    >`
      with last as (
        select distinct on (job) job, status, started_at, duration_ms, dry_run, error
        from maintenance.job_runs where status <> 'running'
        order by job, started_at desc)
      select coalesce(h.job, l.job) as job, l.status, l.started_at, l.duration_ms, l.dry_run, l.error, h.schedule,
        h.last_success_at, h.next_due_at, h.expected_by, h.missed
      from maintenance.job_health(now()) h full join last l on l.job = h.job
      where l.job is not null or h.job is not null
      order by 1`;
    const leases = await deps.sql<{ tenant_slug: string; action: string; actor: string; acquired_at: Date }[]>`
      select tenant_slug, action, actor, acquired_at from maintenance.tenant_operation_leases
      where expires_at > now() order by acquired_at`;
    const [orphans] = await deps.sql<{ n: number; oldest: Date | null }[]>`
      select count(*)::int as n, min(first_seen_at) as oldest from maintenance.orphan_sightings`;
    const actions = await listActions(deps.sql, { tenantSlug: body.slug, limit: body.limit });
    return c.json({
      action: "status",
      jobs: jobs.map((j) => ({
        job: j.job,
        status: j.status,
        startedAt: j.started_at ? new Date(j.started_at).toISOString() : null,
        durationMs: j.duration_ms,
        dryRun: j.dry_run,
        error: j.error,
        schedule: j.schedule,
        lastSuccessAt: j.last_success_at ? new Date(j.last_success_at).toISOString() : null,
        nextDueAt: j.next_due_at ? new Date(j.next_due_at).toISOString() : null,
        expectedBy: j.expected_by ? new Date(j.expected_by).toISOString() : null,
        missed: j.missed ?? false,
      })),
      runningOperations: leases.map((l) => ({ ...l, acquired_at: new Date(l.acquired_at).toISOString() })),
      orphanSightings: {
        count: orphans.n,
        oldestFirstSeen: orphans.oldest ? new Date(orphans.oldest).toISOString() : null,
      },
      recentActions: actions,
    });
  });

  return app;
}
