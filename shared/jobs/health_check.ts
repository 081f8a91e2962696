/**
 * @module
 * The `health-check` job (every 5 minutes): every Evolution server of the fleet (`GET /`, latency, version: see
 * health_fleet.ts), the database (round trip), the Supabase REST/Auth health endpoints where `SUPABASE_URL` is set,
 * and every active tenant's instance from ONE `fetchInstances` call per server, plus bounded `connectionState` reads and liveness probes chosen as
 * health_tenants.ts says (the listing's stored status alone is not the truth). The per-tenant bookkeeping, the
 * log-based rules, the flap detection and the alert lifecycle run set-wise in SQL; opt-in self-healing
 * (health_heal.ts) repairs what a restart or a reconnect can; the dead-man check watches the other scheduled jobs
 * (and health-check's own schedule); the outbox is drained last.
 */
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { errorMessage } from "../errors.ts";
import { instanceName, Slug } from "../naming.ts";
import { checkTenants, type ProbePolicy, type TenantRow } from "./health_tenants.ts";
import { checkFleet, serverInfoHealth, type ServiceHealth } from "./health_fleet.ts";
import { selfHeal } from "./health_heal.ts";
import { channelsFor } from "../alerts/channels.ts";
import { drainOutbox } from "../alerts/outbox.ts";
import { type AlertCandidate, evaluateAlerts, type PlatformAlertKind } from "../alerts/lifecycle.ts";
import { deadManCheck } from "./deadman.ts";
import type { Carry, JobDefinition, JobOutcome, JobStatus, Trigger } from "./runner.ts";

/**
 * Input accepted by `health-check`: optionally only some tenants. Then alerts of other tenants are left as they are,
 * and no platform alert is raised, resolved or notified (a few tenants say nothing about the platform).
 */
export const HealthCheckInput = z.object({
  tenants: z.array(Slug).min(1).max(5000).optional(),
  /** One shard of a fanned-out run (queued by its coordinator through pg_net): the tenants of `server` in `part`. */
  shard: z.object({
    tick: z.uuid(),
    server: z.string().min(1).max(200),
    part: z.number().int().min(0).max(9999),
    parts: z.number().int().min(1).max(10000),
  }).strict().optional(),
});
export type HealthCheckInput = z.infer<typeof HealthCheckInput>;

export type { ServiceHealth } from "./health_fleet.ts";

const DB_SLOW_MS = 1_000;
/** The schedule's interval (every 5 minutes): the probe rotations are spread over the runs of one period. */
const RUN_INTERVAL_MS = 5 * 60_000;

async function timed<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: unknown; ms: number }> {
  const t0 = performance.now();
  try {
    const value = await fn();
    return { value, ms: Math.round(performance.now() - t0) };
  } catch (error) {
    return { error, ms: Math.round(performance.now() - t0) };
  }
}

async function checkDatabase(deps: Deps): Promise<ServiceHealth> {
  const r = await timed(() => deps.sql`select 1 as ok`);
  if (r.error) return { status: "unhealthy", latencyMs: r.ms, error: errorMessage(r.error) };
  return r.ms > DB_SLOW_MS
    ? { status: "degraded", latencyMs: r.ms, reason: `round trip over ${DB_SLOW_MS} ms` }
    : { status: "healthy", latencyMs: r.ms };
}

/** Supabase REST (`/rest/v1/`) and Auth (`/auth/v1/health`), only where SUPABASE_URL is configured. */
async function checkSupabase(deps: Deps): Promise<ServiceHealth> {
  const base = deps.config.supabaseUrl;
  if (!base) return { status: "skipped", reason: "SUPABASE_URL is not set" };
  const key = deps.config.publishableKey ?? deps.config.secretKey;
  const endpoints: Record<string, number | string> = {};
  const t0 = performance.now();
  await Promise.all(
    [["rest", `${base}/rest/v1/`], ["auth", `${base}/auth/v1/health`]].map(async ([name, url]) => {
      try {
        const res = await fetch(url, { headers: { apikey: key }, signal: AbortSignal.timeout(5_000) });
        await res.body?.cancel();
        endpoints[name] = res.status;
      } catch (error) {
        endpoints[name] = errorMessage(error);
      }
    }),
  );
  const failed = Object.entries(endpoints).filter(([, v]) => typeof v !== "number" || v >= 500);
  return {
    status: failed.length ? "unhealthy" : "healthy",
    latencyMs: Math.round(performance.now() - t0),
    endpoints,
    ...(failed.length ? { error: failed.map(([k, v]) => `${k}: ${v}`).join("; ") } : {}),
  };
}

/**
 * What is known of a database outage the database itself cannot record. Between scheduled calls it travels in the
 * call's answer ({@link Carry}: pg_net keeps the answer, `maintenance.invoke_function` hands it to the next call),
 * so a replaced isolate still knows; a long-lived isolate also keeps it here, for calls that carry nothing (the CLI).
 */
let outageMemory: { since: Date; notifiedAt: Date | null } | null = null;
const DATABASE_REPEAT_MS = 4 * 3600_000;

function outageFrom(carry: Carry | undefined): { since: Date; notifiedAt: Date | null } | null {
  const o = carry?.databaseOutage;
  if (o) return { since: new Date(o.since), notifiedAt: o.notifiedAt ? new Date(o.notifiedAt) : null };
  return outageMemory ? { ...outageMemory } : null;
}

/**
 * Called by the runner when the database is unreachable: alert directly on every channel (no outbox), once, then
 * again only every {@link DATABASE_REPEAT_MS}; the outage is handed to the next scheduled call. A run scoped to some
 * tenants alerts nothing (platform alerts are the full runs' business) and hands over what it was given.
 */
export async function onDatabaseUnavailable(
  deps: Deps,
  error: unknown,
  carry?: Carry,
  input?: HealthCheckInput,
): Promise<{ report: Record<string, unknown>; carry: Carry }> {
  const now = deps.now();
  if (input?.tenants || input?.shard) {
    const known = outageFrom(carry);
    const handover = known
      ? { since: known.since.toISOString(), notifiedAt: known.notifiedAt?.toISOString() ?? null }
      : undefined;
    return {
      report: { databaseDown: { notified: false, reason: "a scoped run leaves platform alerts to the full runs" } },
      carry: handover ? { databaseOutage: handover } : {},
    };
  }
  const outage = outageFrom(carry) ?? { since: now, notifiedAt: null };
  const due = !outage.notifiedAt || now.getTime() - outage.notifiedAt.getTime() >= DATABASE_REPEAT_MS;
  let channels: Array<{ channel: string; ok: boolean; error?: string }> = [];
  if (due) {
    channels = deps.notify.sendDirect
      ? await deps.notify.sendDirect({
        severity: "critical",
        title: `${outage.notifiedAt ? "[FIRING, still]" : "[FIRING]"} Database unreachable`,
        text: `health-check cannot reach the database: ${errorMessage(error)}. Jobs cannot record runs or alerts.`,
        fields: { alert: "database_down", since: outage.since.toISOString() },
      })
      : [];
    outage.notifiedAt = now;
  }
  outageMemory = outage;
  const handover = { since: outage.since.toISOString(), notifiedAt: outage.notifiedAt?.toISOString() ?? null };
  return {
    report: { databaseDown: { since: handover.since, notified: due, ...(due ? { channels } : {}) } },
    carry: { databaseOutage: handover },
  };
}

/** The database answers again: say so once (through the outbox, deduplicated by the outage's start). */
async function databaseRecovered(deps: Deps, carry: Carry | undefined): Promise<boolean> {
  const outage = outageFrom(carry);
  outageMemory = null;
  if (!outage?.notifiedAt) return false;
  await deps.notify.send({
    severity: "info",
    title: "[RESOLVED] Database unreachable",
    text: `The database is reachable again (unreachable since ${outage.since.toISOString()}).`,
    fields: { alert: "database_down", status: "resolved" },
    dedupeKey: `database_down:resolved:${outage.since.toISOString()}`,
  });
  return true;
}

/** Runs one health check (the logic of the `health-check` job). */
export async function runHealthCheck(
  deps: Deps,
  ctx: { runId: string; input: HealthCheckInput; trigger?: Trigger; carry?: Carry },
): Promise<JobOutcome> {
  const { sql } = deps;
  const at = deps.now();
  const scope = ctx.input.tenants ?? null;
  const shard = ctx.input.shard ?? null;
  const channels = deps.notify.channels ?? channelsFor(deps.config);
  if (shard && (scope || shard.part >= shard.parts)) {
    return { status: "error", report: { error: "a shard names no tenants, and its part is below its parts" } };
  }
  if (!scope && !shard) {
    // a fleet larger than one invocation should hold fans out: this run becomes the tick's coordinator
    const [plan] = await sql<{ shard_tenants: number; tenants: number }[]>`
      select (maintenance.setting('health_check_shard_tenants') #>> '{}')::int as shard_tenants,
        (select count(*)::int from public.tenants t where coalesce(t.is_active, true)) as tenants`;
    if (plan.shard_tenants > 0 && plan.tenants > plan.shard_tenants) {
      return await runCoordinator(deps, ctx, { at, channels, shardTenants: plan.shard_tenants });
    }
  }
  if (shard) {
    await sql`
      update maintenance.health_shards set state = case when state = 'queued' then 'running' else state end,
        run_id = ${ctx.runId}, started_at = ${at}
      where tick_id = ${shard.tick} and server = ${shard.server} and part = ${shard.part}`;
  }

  // the default server's GET / goes out with the other probes; the fleet's servers are asked once they are known
  const defaultInfo = serverInfoHealth(deps.evolution);
  const [database, supabase] = await Promise.all([checkDatabase(deps), checkSupabase(deps), defaultInfo]);

  const [settings] = await sql<
    {
      concurrency: number;
      budget: number;
      state_rotation_ms: number;
      socket_rotation_ms: number;
      zombie_ms: number;
      self_heal: boolean;
    }[]
  >`
    select (maintenance.setting('health_check_concurrency') #>> '{}')::int as concurrency,
      (maintenance.setting('health_check_probe_budget') #>> '{}')::int as budget,
      (extract(epoch from (maintenance.setting('health_check_state_rotation') #>> '{}')::interval) * 1000)::bigint::int
        as state_rotation_ms,
      (extract(epoch from (maintenance.setting('health_check_socket_rotation') #>> '{}')::interval) * 1000)::bigint::int
        as socket_rotation_ms,
      (extract(epoch from (maintenance.setting('zombie_window') #>> '{}')::interval) * 1000)::bigint as zombie_ms,
      (maintenance.setting('health_check_self_heal') #>> '{}')::boolean as self_heal`;
  const policy: ProbePolicy = {
    budget: settings.budget,
    concurrency: settings.concurrency,
    stateRotationMs: settings.state_rotation_ms,
    socketRotationMs: settings.socket_rotation_ms,
    zombieMinSilenceMs: Number(settings.zombie_ms),
    runIntervalMs: RUN_INTERVAL_MS,
  };
  const tenants = await sql<TenantRow[]>`
    select t.id, t.slug, ti.id as integration_id, ti.is_active as integration_active,
      ti.config ->> 'instance_name' as instance_name,
      ti.config ->> 'evolution_api_url' as evolution_api_url,
      ti.config ->> 'evolution_api_key_secret_id' as evolution_key_id,
      h.live_state, h.live_checked_at, h.socket_state, h.socket_checked_at,
      case when h.state = 'healthy' then h.since end as healthy_since,
      a.last_state as webhook_state, a.last_state_at as webhook_state_at, a.last_event_at, a.first_event_at,
      a.events_total::int as events_total, srv.name as server_name
    from public.tenants t
    left join public.tenant_integrations ti on ti.tenant_id = t.id and ti.integration_type = 'whatsapp'
    left join maintenance.tenant_servers ts on ts.tenant_id = t.id
    left join maintenance.evolution_servers srv on srv.id = ts.server_id
    left join maintenance.tenant_health h on h.tenant_id = t.id
    left join maintenance.webhook_activity a on a.tenant_slug = t.slug
    where coalesce(t.is_active, true) and (${scope}::text[] is null or t.slug = any (${scope}::text[]))
      and (${shard?.server ?? null}::text is null or (coalesce(srv.name, 'default') = ${shard?.server ?? null}::text
        and maintenance.health_shard_part(t.id, ${shard?.parts ?? 1}::int) = ${shard?.part ?? 0}::int))
    order by t.slug`;

  // ONE listing per server of the fleet for every tenant on it (the seed asks once per tenant); a server that is
  // down makes only its own tenants unreachable and raises its own evolution_down
  // a shard keeps only its own tenants' rows of its server's listing (a part of a large server reads it all)
  const keep = shard
    ? new Set(tenants.map((t) => t.instance_name || instanceName(t.slug, deps.config.instancePrefix)))
    : null;
  const fleet = await checkFleet(deps, tenants, {
    concurrency: settings.concurrency,
    defaultHealth: defaultInfo,
    ...(keep ? { keep: (name: string) => keep.has(name) } : {}),
  });
  const evolution = fleet.defaultHealth;
  const listingBySlug = new Map(tenants.map((t) => [t.slug, fleet.listingOf(t)]));
  const checked = await checkTenants(tenants, (t) => fleet.listingOf(t), {
    prefix: deps.config.instancePrefix,
    now: at,
    policy,
  });
  // opt-in: restart dead sockets, reconnect transient closes (budgeted, audited); what it did is in the report
  const healed = settings.self_heal
    ? await selfHeal(deps, checked.results, {
      clientOf: (slug) => listingBySlug.get(slug)!.client,
      runId: ctx.runId,
      budget: Math.max(0, policy.budget - checked.calls.connectionState - checked.calls.socketProbe),
    })
    : null;

  const [{ summary }] = await sql<{ summary: Record<string, unknown> & { issues: unknown[]; issueCount: number } }[]>`
    select maintenance.record_tenant_health(${ctx.runId}, ${at}, ${sql.json(checked.results as never)},
      ${scope === null && shard === null}) as summary`;
  // tenant-facing notices: the episodes that statement opened or closed, queued on the application webhooks only
  const [{ notices }] = await sql<{ notices: { required: number; done: number } }[]>`
    select maintenance.queue_tenant_notices(${channels.map((c) => c.name)}::text[]) as notices`;

  // the dead-man check is the coordinator's (or a whole run's): a shard watches its own tenants only
  const deadman = shard ? { candidates: [], watched: 0, missed: [], unparsable: [] } : await deadManCheck(sql, {
    now: at,
    runningJob: ctx.trigger === "cron" ? "health-check" : undefined,
  });

  // Platform alerts are the full runs' business: a run scoped to some tenants judges only those tenants' own
  // alerts (five down tenants are not a platform incident, and a database back for a scoped run is told by the next
  // full run). A full run resolves a platform alert whose check is no longer configured.
  const fullRun = scope === null && shard === null;
  // a shard's part 0 judges its server's own platform alerts (evolution_down, mass_disconnect of that server)
  const serverScope = shard && shard.part === 0 ? (shard.server === "default" ? "" : shard.server) : null;
  const databaseRecoveredNow = fullRun && await databaseRecovered(deps, ctx.carry).catch(() => false);
  const candidates: AlertCandidate[] = [...deadman.candidates];
  const platformKinds: PlatformAlertKind[] = ["evolution_down", "missed_run"];
  // the checks every full run makes; supabase_down joins them only while SUPABASE_URL is set
  const configuredKinds: PlatformAlertKind[] = ["evolution_down", "database_down", "missed_run", "mass_disconnect"];
  // one evolution_down per server that is down (`evolution_down` for the default one): it silences that server's
  // tenants' alerts only
  candidates.push(...fleet.candidates);
  if (supabase.status !== "skipped") {
    platformKinds.push("supabase_down");
    configuredKinds.push("supabase_down");
    if (supabase.status === "unhealthy") {
      candidates.push({
        fingerprint: "supabase_down",
        kind: "supabase_down",
        severity: "critical",
        summary: "Supabase REST/Auth health check failed",
        labels: { service: "supabase" },
        details: { text: `Supabase health endpoints failed: ${supabase.error}.`, endpoints: supabase.endpoints },
      });
    }
  }
  const serverFingerprint = serverScope === null
    ? null
    : serverScope === ""
    ? "evolution_down"
    : `evolution_down:${serverScope}`;
  const alerts = await evaluateAlerts(sql, {
    runId: ctx.runId,
    at,
    candidates: fullRun
      ? candidates
      : serverScope !== null
      ? fleet.candidates.filter((c) => c.fingerprint === serverFingerprint)
      : [],
  }, {
    platformKinds: fullRun ? platformKinds : serverScope !== null ? ["evolution_down"] : [],
    ...(serverScope !== null ? { serverScope } : {}),
    configuredKinds: fullRun ? configuredKinds : undefined,
    // the tenants of a server that is down are unreachable, which the rules never count either way: the others are
    // judged, whichever server is down
    tenantsEvaluated: true,
    massDetection: fullRun || serverScope !== null,
    fullRun,
    channels: channels.map((c) => c.name),
  });
  const delivery = await drainOutbox(sql, channels);

  // the seed's overall rules: an unhealthy service or a critical (high) issue → unhealthy; any issue → degraded
  const services = { evolution_api: evolution, database, supabase };
  const unhealthyService = Object.values(services).some((s) => s.status === "unhealthy");
  const critical = checked.results.some((r) => r.severity === "high");
  const anyIssue = summary.issueCount > 0 || deadman.missed.length > 0 ||
    Object.values(services).some((s) => s.status === "degraded");
  const status: JobStatus = unhealthyService || critical ? "unhealthy" : anyIssue ? "degraded" : "healthy";
  if (shard) {
    await sql`
      update maintenance.health_shards set state = case when state = 'missed' then state else 'done' end,
        run_id = ${ctx.runId}, status = ${status}, finished_at = ${deps.now()}, checked = ${summary.checked as number}
      where tick_id = ${shard.tick} and server = ${shard.server} and part = ${shard.part}`;
  }

  return {
    status,
    report: {
      timestamp: at.toISOString(),
      overall_status: status,
      scope: shard ? { shard } : scope ? { tenants: scope.length } : "all",
      services,
      servers: fleet.servers,
      tenants: {
        checked: summary.checked,
        healthy: summary.healthy,
        degraded: summary.degraded,
        unhealthy: summary.unhealthy,
        changed: summary.changed,
        wentDown: summary.wentDown,
        flapping: summary.flapping,
        frequentDisconnections: summary.frequentDisconnections,
        zombies: summary.zombies,
        removed: summary.removed,
      },
      issues: summary.issues,
      issueCount: summary.issueCount,
      evolutionCalls: {
        serverInfo: fleet.calls.serverInfo,
        fetchInstances: fleet.calls.fetchInstances,
        connectionState: checked.calls.connectionState,
        socketProbe: checked.calls.socketProbe,
        selfHeal: healed?.calls ?? 0,
        budget: policy.budget,
        overBudget: checked.calls.overBudget,
      },
      ...(healed ? { selfHeal: healed.report } : {}),
      deadman: { watched: deadman.watched, missed: deadman.missed, unparsable: deadman.unparsable },
      alerts,
      tenantNotices: notices,
      notifications: {
        channels: channels.map((c) => c.name),
        sent: delivery.sent,
        retrying: delivery.retrying,
        failed: delivery.failed,
        lost: delivery.lost,
        remaining: delivery.remaining,
        errors: delivery.errors.slice(0, 20),
      },
      ...(databaseRecoveredNow ? { databaseRecovered: true } : {}),
    },
  };
}

/** The `health-check` job. */
export const healthCheck: JobDefinition<typeof HealthCheckInput> = {
  name: "health-check",
  input: HealthCheckInput,
  schedule: "*/5 * * * *",
  sampleInput: {},
  summarize(r) {
    // deno-lint-ignore no-explicit-any
    const t = r.tenants as any, s = r.services as any, a = r.alerts as any, calls = r.evolutionCalls as any;
    // deno-lint-ignore no-explicit-any
    const f = r.fanout as any;
    if (f) return `fanned out: ${f.tenants} tenant(s) in ${f.shards.length} shard(s); ${f.missed.length} missed before`;
    if (!t) return "";
    return `${t.checked} tenant(s): ${t.healthy} healthy, ${t.degraded} degraded, ${t.unhealthy} unhealthy; ` +
      `Evolution ${s?.evolution_api?.status ?? "?"}; ${typeof a?.firing === "number" ? a.firing : 0} alert(s) ` +
      `firing; ${calls?.fetchInstances ?? 0} fetchInstances call` +
      (Array.isArray(r.servers) && r.servers.length > 1
        ? `; ${r.servers.length} servers, ${
          r.servers.filter((x: { state: string }) => x.state === "unhealthy").length
        } down`
        : "");
  },
  leaseSeconds: 240,
  // each shard of a fanned-out run has a lease of its own: shards run in parallel, a shard never twice
  leaseKey: (input) => input.shard ? `health-check:shard:${input.shard.server}:${input.shard.part}` : "health-check",
  onDatabaseUnavailable,
  run: ({ deps, input, runId, trigger, carry }) => runHealthCheck(deps, { runId, input, trigger, carry }),
};

/** The coordinator of a fanned-out run: plans and queues the shards, makes the fleet-wide platform checks. */
async function runCoordinator(
  deps: Deps,
  ctx: { runId: string; input: HealthCheckInput; trigger?: Trigger; carry?: Carry },
  o: { at: Date; channels: ReturnType<typeof channelsFor>; shardTenants: number },
): Promise<JobOutcome> {
  const { sql } = deps;
  const { at, channels } = o;
  const [database, supabase] = await Promise.all([checkDatabase(deps), checkSupabase(deps)]);
  const servers = await sql<{ server: string; tenants: number }[]>`
    select coalesce(srv.name, 'default') as server, count(*)::int as tenants
    from public.tenants t
    left join maintenance.tenant_servers ts on ts.tenant_id = t.id
    left join maintenance.evolution_servers srv on srv.id = ts.server_id
    where coalesce(t.is_active, true)
    group by 1 order by 1`;
  const tenants = servers.reduce((n, s) => n + s.tenants, 0);
  const shards = servers.flatMap((s) => {
    const parts = Math.max(1, Math.ceil(s.tenants / o.shardTenants));
    return Array.from({ length: parts }, (_, part) => ({ server: s.server, part, parts }));
  });
  const { missed, queued } = await sql.begin(async (tx) => {
    // a shard of an earlier tick not done by now is missed: told once, here
    const missed = await tx<{ tick: string; server: string; part: number; parts: number }[]>`
      update maintenance.health_shards set state = 'missed'
      where state in ('queued', 'running')
      returning tick_id::text as tick, server, part, parts`;
    await tx`
      insert into maintenance.health_ticks (id, started_at, shard_tenants, tenants)
      values (${ctx.runId}, ${at}, ${o.shardTenants}, ${tenants})`;
    const counts = await tx<{ server: string; part: number; n: number }[]>`
      select coalesce(srv.name, 'default') as server, maintenance.health_shard_part(t.id, p.parts) as part,
        count(*)::int as n
      from public.tenants t
      left join maintenance.tenant_servers ts on ts.tenant_id = t.id
      left join maintenance.evolution_servers srv on srv.id = ts.server_id
      join (select x ->> 'server' as server, (x ->> 'parts')::int as parts
            from jsonb_array_elements(${
      tx.json(servers.map((s) => ({
        server: s.server,
        parts: Math.max(1, Math.ceil(s.tenants / o.shardTenants)),
      })) as never)
    }) x) p on p.server = coalesce(srv.name, 'default')
      where coalesce(t.is_active, true)
      group by 1, 2`;
    const count = new Map(counts.map((c) => [`${c.server}/${c.part}`, c.n]));
    for (const s of shards) {
      const body = { shard: { tick: ctx.runId, server: s.server, part: s.part, parts: s.parts } };
      await tx`
        insert into maintenance.health_shards (tick_id, server, part, parts, tenants, request_id)
        values (${ctx.runId}, ${s.server}, ${s.part}, ${s.parts}, ${count.get(`${s.server}/${s.part}`) ?? 0},
          maintenance.invoke_function('health-check', ${tx.json(body)}))`;
    }
    return { missed, queued: shards.length };
  });

  const deadman = await deadManCheck(sql, { now: at, runningJob: ctx.trigger === "cron" ? "health-check" : undefined });
  const databaseRecoveredNow = await databaseRecovered(deps, ctx.carry).catch(() => false);
  const candidates: AlertCandidate[] = [...deadman.candidates];
  const platformKinds: PlatformAlertKind[] = ["missed_run"];
  const configuredKinds: PlatformAlertKind[] = ["evolution_down", "database_down", "missed_run", "mass_disconnect"];
  if (supabase.status !== "skipped") {
    platformKinds.push("supabase_down");
    configuredKinds.push("supabase_down");
    if (supabase.status === "unhealthy") {
      candidates.push({
        fingerprint: "supabase_down",
        kind: "supabase_down",
        severity: "critical",
        summary: "Supabase REST/Auth health check failed",
        labels: { service: "supabase" },
        details: { text: `Supabase health endpoints failed: ${supabase.error}.`, endpoints: supabase.endpoints },
      });
    }
  }
  // the servers' own alerts and the tenants' are the shards': the coordinator judges only what it checked
  const alerts = await evaluateAlerts(sql, { runId: ctx.runId, at, candidates }, {
    platformKinds,
    configuredKinds,
    tenantsEvaluated: false,
    massDetection: false,
    fullRun: true,
    channels: channels.map((c) => c.name),
  });
  const delivery = await drainOutbox(sql, channels);
  const services = { database, supabase };
  const status: JobStatus = Object.values(services).some((s) => s.status === "unhealthy")
    ? "unhealthy"
    : deadman.missed.length || missed.length || Object.values(services).some((s) => s.status === "degraded")
    ? "degraded"
    : "healthy";
  await sql`update maintenance.health_ticks set status = ${status} where id = ${ctx.runId}`;
  return {
    status,
    report: {
      timestamp: at.toISOString(),
      overall_status: status,
      scope: "fanout",
      services,
      fanout: { tick: ctx.runId, tenants, shardTenants: o.shardTenants, queued, shards, missed },
      deadman: { watched: deadman.watched, missed: deadman.missed, unparsable: deadman.unparsable },
      alerts,
      notifications: {
        channels: channels.map((c) => c.name),
        sent: delivery.sent,
        retrying: delivery.retrying,
        failed: delivery.failed,
        lost: delivery.lost,
        remaining: delivery.remaining,
        errors: delivery.errors.slice(0, 20),
      },
      ...(databaseRecoveredNow ? { databaseRecovered: true } : {}),
    },
  };
}
