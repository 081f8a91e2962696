/**
 * @module
 * The `isolation-audit` job (daily: the seed's naming, webhook and cross-tenant checks), on every enabled server of
 * the fleet (`maintenance.evolution_servers`, one listing per server). Violations come from both sides:
 *
 * - the database, through the SQL views: `invalid_prefix` and `slug_mismatch` (`maintenance.naming_violations`),
 *   `webhook_url_mismatch` (`maintenance.webhook_mismatches`, the stored config URL);
 * - Evolution, server by server: `unknown_tenant_instance` (a prefixed instance whose name maps to no existing tenant
 *   and that no row names; which tenant a name maps to is the one rule of `tenantOfInstance` in naming.ts, shared
 *   with orphan-cleanup, so a tenant whose slug predates the bundle's format, `Legacy_Co` of `revalya-Legacy_Co`,
 *   keeps its instance), `wrong_server_instance` (an existing tenant's instance on a server that is not the tenant's
 *   own: its link in `maintenance.tenant_servers`, else the default server), `instance_webhook_mismatch` (the webhook
 *   actually configured on a tenant's instance on its own server, from `findWebhook` with bounded concurrency, is not
 *   the expected URL and token header, or is disabled; `routesTo` names the other tenant when it points at one), and,
 *   on `slug_mismatch`, the tenant the named instance really belongs to;
 * - the webhook receiver: `cross_tenant_attempts` logged in the last 24 h (`maintenance.cross_tenant_attempts`).
 * Every violation names its server (`server`, by registry name): where the instance is, or the tenant's own server for
 * the database-side ones.
 *
 * A dry run (the default) lists every violation with the exact steps that would fix it. `{"apply": true}` runs them,
 * idempotently, one tenant lease at a time, each step recorded in `maintenance.actions_audit`, each on the server it
 * names. The order is the safe one (the seed deleted first): create the right instance, point the config row at it,
 * then delete the wrong one, and never an instance that belongs to an existing tenant (checked again just before each
 * deletion). Webhooks are corrected in place with `setWebhook` (recreating the instance would log the number out).
 * Cross-tenant attempts are acknowledged once their cause is fixed.
 *
 * The fleet's rules (what is safe when the same tenant shows up on two servers):
 * - instance steps act on the tenant's own server only. A missing instance is created there; a tenant with no server
 *   yet (no link) is placed first (`placementFor`: the least-loaded enabled, non-draining server) and linked before
 *   the create, as `whatsapp-ops fix` does. Nothing is created while the instance exists on another server (that
 *   would be a second instance carrying the tenant's webhook token);
 * - a server that cannot be listed (down, refusing the key, its key gone from Vault) is reported as such, never read
 *   as "no instances": its tenants get no instance step anywhere (no create, no delete, no webhook change) until it
 *   answers; the other servers' findings are handled. A disabled server is not listed, and its tenants likewise;
 * - a `wrong_server_instance` is never deleted as unknown: it is the tenant's. It is deleted only as a duplicate,
 *   when the tenant's own server has the tenant's instance too, and only if that one is connected (`open`) or this
 *   copy is not (so the number is never logged out of its only working connection); checked again, on both servers,
 *   just before the delete. Otherwise it is reported with what to do (pair the instance on the tenant's server, or
 *   move the tenant's link), and kept.
 */
import { z } from "zod";
import pMap from "p-map";
import type { Sql } from "../db.ts";
import type { Deps } from "../deps.ts";
import { recordAction } from "../audit.ts";
import {
  existingTenants,
  instanceName,
  instanceSuffix,
  isSlug,
  redactWebhookUrl,
  Slug,
  tenantOfInstance,
  WEBHOOK_TOKEN_HEADER,
  webhookUrl,
} from "../naming.ts";
import type { EvolutionClient } from "../evolution/client.ts";
import type { WebhookConfig } from "../evolution/types.ts";
import { describeError, isEvolutionError } from "../evolution/errors.ts";
import { webhookCheck } from "../evolution/webhook_check.ts";
import { tryTenantLease } from "../tenant_lease.ts";
import type { JobDefinition, JobOutcome } from "./runner.ts";
import { createWhenFree, deleteInstance } from "../evolution/lifecycle.ts";
import { DEFAULT_SERVER, placementFor, type ServerView } from "../evolution/servers.ts";
import {
  commitPlacement,
  type Fleet,
  type ListedInstance,
  listFleet,
  loadFleet,
  placeTenant,
  type ServerListing,
  type TenantHome,
  tenantHomes,
} from "../evolution/fleet.ts";

/** Input accepted by `isolation-audit`. */
export const IsolationAuditInput = z.object({
  /** Apply the fixes (default false: report only). */
  apply: z.boolean().default(false),
  /** Only these tenants (and instances named for these slugs). */
  tenants: z.array(Slug).min(1).max(5000).optional(),
  /** Parallel `findWebhook` calls (default 8). */
  concurrency: z.number().int().min(1).max(32).default(8),
});
export type IsolationAuditInput = z.infer<typeof IsolationAuditInput>;

/** Kinds of violation. */
export type ViolationKind =
  | "invalid_prefix"
  | "slug_mismatch"
  | "webhook_url_mismatch"
  | "unknown_tenant_instance"
  | "wrong_server_instance"
  | "instance_webhook_mismatch"
  | "cross_tenant_attempts";

/** One step of a fix. `server`: the registry name of the server the step acts on. */
export type FixStep =
  | {
    action: "create_instance";
    tenant: string;
    instance: string;
    server: string;
    /** The tenant has no server yet: placed (least-loaded server, decided again when applied) and linked first. */
    placement?: true;
  }
  | { action: "update_config"; tenant: string; set: { instance_name?: string; webhook_url?: string } }
  | {
    action: "delete_instance";
    tenant: string | null;
    instance: string;
    server: string;
    /** A duplicate of the instance on the tenant's own server (this one): deleted only if that one is still there. */
    duplicateOf?: string;
  }
  | { action: "set_webhook"; tenant: string; instance: string; url: string; server: string }
  | { action: "acknowledge_cross_tenant"; tenant: string; until: string };

/** One violation, with the steps that fix it and (after apply) how each went. */
export interface Violation {
  kind: ViolationKind;
  tenant: string | null;
  instance: string | null;
  /**
   * The registry name of the server the finding is about: where the instance is (Evolution-side findings), else the
   * tenant's own server; null when the tenant's server is a URL no server is registered under.
   */
  server: string | null;
  current: unknown;
  expected: unknown;
  evidence?: Record<string, unknown>;
  /** Empty when nothing is safe to do automatically (`notes` say what a human should do). */
  fix: FixStep[];
  /** Human-readable form of `fix`. */
  fixText: string[];
  notes?: string[];
  applied?: { step: string; result: "ok" | "failed" | "skipped"; error?: string }[];
}

function describeStep(s: FixStep): string {
  switch (s.action) {
    case "create_instance":
      return s.placement
        ? `place tenant '${s.tenant}' on the least-loaded server taking new tenants (now '${s.server}'), link it ` +
          `there, and create instance '${s.instance}' on it with the tenant's webhook URL and token header`
        : `create instance '${s.instance}' on server '${s.server}' with the tenant's webhook URL and token header`;
    case "update_config":
      return `update tenant '${s.tenant}' config: ${Object.entries(s.set).map(([k, v]) => `${k} = '${v}'`).join(", ")}`;
    case "delete_instance":
      return s.duplicateOf
        ? `delete the duplicate instance '${s.instance}' on server '${s.server}' (the tenant's own server ` +
          `'${s.duplicateOf}' has it)`
        : `delete instance '${s.instance}' on server '${s.server}'`;
    case "set_webhook":
      return `set the webhook of '${s.instance}' on server '${s.server}' to '${s.url}' with the tenant's token ` +
        `header, enabled`;
    case "acknowledge_cross_tenant":
      return `acknowledge the cross-tenant attempts on '${s.tenant}' up to ${s.until} (their cause is fixed above)`;
  }
}

interface NamingRow {
  tenant_slug: string;
  violation: "invalid_prefix" | "slug_mismatch";
  current_name: string | null;
  expected_name: string;
}
interface WebhookRow {
  tenant_slug: string;
  current_url: string | null;
  expected_url: string;
}
interface CrossRow {
  tenant_slug: string | null;
  attempts: string;
  first_at: Date;
  last_at: Date;
  /** last_at at full (microsecond) precision, for the acknowledgement. */
  last_at_exact: string;
  sample: unknown;
}

/** What the database says: the views' violations (in scope) and the facts the plans need. */
interface AuditFacts {
  naming: NamingRow[];
  hooks: WebhookRow[];
  cross: CrossRow[];
  /** Every tenant's slug. */
  tenants: Set<string>;
  /** Instance name → the slugs whose integration row names it. */
  claims: Map<string, string[]>;
  /** Every tenant's server. */
  homes: Map<string, TenantHome>;
}

/** The fleet as this run listed it. */
interface FleetView {
  fleet: Fleet;
  listings: ServerListing[];
  byServer: Map<string, ServerListing>;
}

/**
 * Where a tenant's instance steps act: its own server, listed in this run; or why nothing is decided for it on
 * Evolution (its server could not be listed, is disabled, or is a URL no server is registered under).
 */
type Home =
  | { listed: true; server: string; source: TenantHome["source"]; listing: ServerListing }
  | { listed: false; server: string | null; source: TenantHome["source"]; reason: string };

/** A tenant's instance whose webhook is to be read, on its own server. */
interface TenantInstance {
  name: string;
  slug: string;
  server: string;
  client: EvolutionClient;
}

/** Runs one audit (the job's logic): load the facts, find the violations, then apply their fixes or record the plan. */
export async function runIsolationAudit(
  deps: Deps,
  ctx: { runId: string; input: IsolationAuditInput; actor?: string },
): Promise<JobOutcome> {
  const { sql, config } = deps;
  const { apply, concurrency } = ctx.input;
  const scope = ctx.input.tenants ? new Set<string>(ctx.input.tenants) : null;
  const actor = ctx.actor ?? "job:isolation-audit";
  const prefix = config.instancePrefix;

  const facts = await loadAuditFacts(deps, scope);
  const fleet = await loadFleet(deps);
  const listings = await listFleet(deps, fleet, { prefix });
  const view: FleetView = { fleet, listings, byServer: new Map(listings.map((l) => [l.server.name, l])) };
  const home = (slug: string) => homeOf(facts, view, slug);
  // where a tenant with no server yet would be placed now (decided again when a create is applied)
  const placement = facts.naming.length ? await placementFor(sql) : null;
  const naming = namingViolations(facts, view, {
    prefix,
    webhookBaseUrl: config.webhookBaseUrl,
    home,
    placement: placement?.name ?? null,
  });
  const stored = storedWebhookViolations(facts.hooks, home);
  const instances = classifyInstances(facts, view, { scope, prefix, home });
  const webhooks = await instanceWebhookViolations(deps, instances.toCheck, { concurrency });
  const cross = crossTenantViolations(facts.cross, home);
  const violations = [
    ...naming,
    ...stored,
    ...instances.violations,
    ...webhooks.violations,
    ...cross,
  ];

  if (apply) await applyFixes(deps, violations, { actor, fleet });
  else await recordPlans(sql, violations, { actor, runId: ctx.runId });
  return auditOutcome(violations, {
    apply,
    scope: ctx.input.tenants ?? "all",
    view,
    webhooksChecked: webhooks.checked,
    checkErrors: webhooks.checkErrors,
    unchecked: instances.unchecked,
  });
}

/** True when `slug` is in the audit's scope (null: every tenant). */
function inScope(scope: Set<string> | null, slug: string | null): boolean {
  return !scope || (slug !== null && scope.has(slug));
}

/** A violation with the human-readable form of its fix. */
function violation(v: Omit<Violation, "fixText">): Violation {
  return { ...v, fixText: v.fix.map(describeStep) };
}

/** Phase 1: the database side (views) and the facts the plans need. */
async function loadAuditFacts(deps: Deps, scope: Set<string> | null): Promise<AuditFacts> {
  const { sql } = deps;
  const naming = (await sql<NamingRow[]>`
    select tenant_slug, violation, current_name, expected_name from maintenance.naming_violations
    order by tenant_slug`).filter((r) => inScope(scope, r.tenant_slug));
  const hooks = (await sql<WebhookRow[]>`
    select tenant_slug, current_url, expected_url from maintenance.webhook_mismatches order by tenant_slug`)
    .filter((r) => inScope(scope, r.tenant_slug));
  const homes = await tenantHomes(deps);
  const tenants = new Set(homes.keys());
  const claims = new Map<string, string[]>();
  for (
    const r of await sql<{ slug: string; name: string }[]>`
      select t.slug, ti.config ->> 'instance_name' as name
      from public.tenant_integrations ti join public.tenants t on t.id = ti.tenant_id
      where ti.integration_type = 'whatsapp' and ti.config ->> 'instance_name' is not null`
  ) claims.set(r.name, [...(claims.get(r.name) ?? []), r.slug]);
  const cross = (await sql<CrossRow[]>`
    select tenant_slug, attempts, first_at, last_at, to_json(last_at) #>> '{}' as last_at_exact, sample
    from maintenance.cross_tenant_attempts('24 hours')`).filter((r) => inScope(scope, r.tenant_slug));
  return { naming, hooks, cross, tenants, claims, homes };
}

/** The tenant's own server and whether this run could list it. */
function homeOf(facts: AuditFacts, view: FleetView, slug: string): Home {
  const h = facts.homes.get(slug) ?? { server: DEFAULT_SERVER, source: "default" as const, legacyUrl: null };
  if (h.server === null) {
    return {
      listed: false,
      server: null,
      source: h.source,
      reason: `its config row names ${h.legacyUrl}, a URL no server is registered under (run ` +
        `'select * from maintenance.convert_legacy_server_links()' to link it)`,
    };
  }
  const listing = view.byServer.get(h.server);
  if (!listing) {
    const why = view.fleet.disabled.includes(h.server) ? "is disabled" : "is not in the registry";
    return { listed: false, server: h.server, source: h.source, reason: `server '${h.server}' ${why}` };
  }
  if (!listing.instances) {
    return { listed: false, server: h.server, source: h.source, reason: listing.error ?? "not listed" };
  }
  return { listed: true, server: h.server, source: h.source, listing };
}

/** The listed servers (other than `except`) that list an instance of that name. */
function listedElsewhere(view: FleetView, name: string, except: string | null): { server: string; state: string }[] {
  return view.listings.filter((l) => l.server.name !== except && l.byName.has(name))
    .map((l) => ({ server: l.server.name, state: l.byName.get(name)!.state }));
}

/** `'a', 'b'`: server names for a sentence. */
function names(list: { server: string }[]): string {
  return list.map((x) => `'${x.server}'`).join(", ");
}

/** Phase 3a: naming violations (DB view), with what the tenant's own server says about both names. */
function namingViolations(
  facts: AuditFacts,
  view: FleetView,
  options: { prefix: string; webhookBaseUrl: string; home: (slug: string) => Home; placement: string | null },
): Violation[] {
  const { tenants, claims } = facts;
  return facts.naming.map((r) => {
    const home = options.home(r.tenant_slug);
    const onHome = (name: string | null) => home.listed && name !== null && home.listing.byName.has(name);
    const current = r.current_name;
    const owner = current ? tenantOfInstance(current, options.prefix, tenants) : null;
    const ownedByOther = (owner !== null && owner !== r.tenant_slug) ||
      (current !== null && (claims.get(current) ?? []).some((s) => s !== r.tenant_slug));
    const fix: FixStep[] = [];
    const notes: string[] = [];
    const expectedElsewhere = listedElsewhere(view, r.expected_name, home.server);
    if (current && ownedByOther) {
      notes.push(`instance '${current}' belongs to tenant '${owner ?? claims.get(current)?.[0]}': it is kept`);
    }
    if (!home.listed) {
      // nothing is decided for a tenant whose server could not be read: not even the row (it may name a working one)
      notes.push(
        `Evolution could not be read for this tenant (${home.reason}): the fix is decided when its server answers`,
      );
    } else {
      let creates = false;
      if (!onHome(r.expected_name)) {
        if (expectedElsewhere.length) {
          notes.push(
            `instance '${r.expected_name}' is on server(s) ${names(expectedElsewhere)}, not on the tenant's server ` +
              `'${home.server}': it is not created again (see its wrong_server_instance)`,
          );
        } else if (home.source === "default" && !options.placement) {
          notes.push(
            `no Evolution server takes new tenants (every one is disabled or draining): instance ` +
              `'${r.expected_name}' cannot be created until one does`,
          );
        } else {
          fix.push({
            action: "create_instance",
            tenant: r.tenant_slug,
            instance: r.expected_name,
            ...(home.source === "default" ? { server: options.placement!, placement: true as const } : {
              server: home.server,
            }),
          });
          creates = true;
        }
      }
      if (onHome(r.expected_name) || creates) {
        fix.push({
          action: "update_config",
          tenant: r.tenant_slug,
          set: { instance_name: r.expected_name, webhook_url: webhookUrl(r.tenant_slug, options.webhookBaseUrl) },
        });
        if (current && !ownedByOther && onHome(current)) {
          fix.push({ action: "delete_instance", tenant: r.tenant_slug, instance: current, server: home.server });
        } else if (current && !ownedByOther) {
          const elsewhere = listedElsewhere(view, current, home.server);
          if (elsewhere.length) {
            notes.push(
              `instance '${current}' is on server(s) ${names(elsewhere)}, not on the tenant's server ` +
                `'${home.server}': it is kept`,
            );
          }
        }
      } else {
        notes.push(
          `the row is left as it is (it may name the tenant's working instance) until '${r.expected_name}' can be ` +
            `made on the tenant's server`,
        );
      }
    }
    return violation({
      kind: r.violation,
      tenant: r.tenant_slug,
      instance: current,
      server: home.server,
      current,
      expected: r.expected_name,
      evidence: {
        currentInstanceExists: home.listed ? onHome(current) : null,
        expectedInstanceExists: home.listed ? onHome(r.expected_name) : null,
        currentInstanceMapsTo: current ? instanceSuffix(current, options.prefix) : null,
        currentInstanceTenant: owner,
        ...(expectedElsewhere.length ? { expectedInstanceOn: expectedElsewhere } : {}),
      },
      fix,
      notes: notes.length ? notes : undefined,
    });
  });
}

/** Phase 3b: stored webhook URLs (DB view). */
function storedWebhookViolations(rows: WebhookRow[], home: (slug: string) => Home): Violation[] {
  return rows.map((r) =>
    violation({
      kind: "webhook_url_mismatch",
      tenant: r.tenant_slug,
      instance: null,
      server: home(r.tenant_slug).server,
      current: r.current_url,
      expected: r.expected_url,
      fix: [{ action: "update_config", tenant: r.tenant_slug, set: { webhook_url: r.expected_url } }],
    })
  );
}

/** A tenant's instance the audit keeps but cannot check: its slug is not in the bundle's format. */
export interface UncheckedInstance {
  instance: string;
  tenant: string;
  reason: string;
  server: string;
}

/**
 * Phase 3c: the prefixed instances in scope on each listed server, as violations (named for no existing tenant and
 * named by no row; or an existing tenant's on a server that is not the tenant's) or as tenants' instances on their own
 * server whose webhook is to be read. Instances without the prefix are not ours: never touched. An instance of an
 * existing tenant whose slug is not in the bundle's format (`revalya-Legacy_Co`) is the tenant's: kept, and listed as
 * `unchecked` (its webhook token cannot be derived from such a slug, and the receiver refuses it).
 */
function classifyInstances(
  facts: AuditFacts,
  view: FleetView,
  options: { scope: Set<string> | null; prefix: string; home: (slug: string) => Home },
): { violations: Violation[]; toCheck: TenantInstance[]; unchecked: UncheckedInstance[] } {
  const violations: Violation[] = [];
  const toCheck: TenantInstance[] = [];
  const unchecked: UncheckedInstance[] = [];
  for (const listing of view.listings) {
    const server = listing.server.name;
    for (const inst of listing.instances ?? []) {
      const suffix = instanceSuffix(inst.name, options.prefix);
      if (suffix === null) continue;
      const owner = tenantOfInstance(inst.name, options.prefix, facts.tenants);
      if (!inScope(options.scope, owner ?? suffix)) continue;
      if (owner === null) {
        if ((facts.claims.get(inst.name) ?? []).length) continue; // a row names it: that row's naming violation
        violations.push(violation({
          kind: "unknown_tenant_instance",
          tenant: null,
          instance: inst.name,
          server,
          current: { instance: inst.name, state: inst.state },
          expected: null,
          evidence: { mapsToSlug: suffix, tenantExists: false },
          fix: [{ action: "delete_instance", tenant: null, instance: inst.name, server }],
        }));
        continue;
      }
      const home = options.home(owner);
      if (home.server !== server) {
        violations.push(wrongServer(owner, inst, { server, home }));
        continue;
      }
      if (!isSlug(owner)) {
        unchecked.push({
          instance: inst.name,
          tenant: owner,
          server,
          reason: "the tenant's slug is not in the bundle's format (lowercase letters, digits, inner hyphens): its " +
            "instance is kept, and its webhook is not checked (no token derives from such a slug)",
        });
        continue;
      }
      toCheck.push({ name: inst.name, slug: owner, server, client: listing.server.client! });
    }
  }
  return { violations, toCheck, unchecked };
}

/**
 * An existing tenant's instance on `server`, which is not the tenant's own. A duplicate to delete only when the
 * tenant's own server lists the tenant's instance too and that one is connected or this copy is not; else kept, with
 * what to do.
 */
function wrongServer(owner: string, inst: ListedInstance, options: { server: string; home: Home }): Violation {
  const { server, home } = options;
  const homeCopy = home.listed ? home.listing.byName.get(inst.name) ?? null : null;
  const duplicate = homeCopy !== null && (homeCopy.state === "open" || inst.state !== "open");
  const notes: string[] = [];
  if (!home.listed) {
    notes.push(
      `the tenant's own server could not be read (${home.reason}): this instance is kept, and nothing is decided ` +
        `for the tenant until its server answers`,
    );
  } else if (!homeCopy) {
    notes.push(
      `the tenant's own server '${home.server}' has no instance of it, so this may be the tenant's live instance: ` +
        `kept. If the tenant works from '${server}', move its link there (migrate); otherwise run 'ops fix ${owner}' ` +
        `to create its instance on '${home.server}', pair it, and audit again to remove this copy`,
    );
  } else if (!duplicate) {
    notes.push(
      `this copy is connected (open) and the one on the tenant's server '${home.server}' is not ` +
        `(${homeCopy.state}): kept, so the number is not logged out. Pair the instance on '${home.server}' ` +
        `('ops reconnect ${owner}'), then audit again; or move the tenant's link to '${server}' (migrate)`,
    );
  } else {
    notes.push(
      `a duplicate: the tenant's own server '${home.server}' has its instance (${homeCopy.state}); this copy on ` +
        `'${server}' still carries the tenant's webhook token`,
    );
  }
  return violation({
    kind: "wrong_server_instance",
    tenant: owner,
    instance: inst.name,
    server,
    current: { server, state: inst.state },
    expected: { server: home.server },
    evidence: {
      tenantServer: home.server,
      tenantServerSource: home.source,
      tenantServerListed: home.listed,
      onTenantServer: home.listed ? (homeCopy ? { state: homeCopy.state } : null) : "unknown",
      duplicate,
    },
    fix: duplicate && home.server
      ? [{ action: "delete_instance", tenant: owner, instance: inst.name, server, duplicateOf: home.server }]
      : [],
    notes,
  });
}

/**
 * Phase 3d: the webhook configured on each tenant's instance on its own server (`findWebhook`, bounded concurrency)
 * against the expected one; `routesTo` names the other tenant a wrong URL points at.
 */
async function instanceWebhookViolations(
  deps: Deps,
  toCheck: TenantInstance[],
  options: { concurrency: number },
): Promise<{
  violations: Violation[];
  checked: number;
  checkErrors: { instance: string; error: string; server: string }[];
}> {
  const { config } = deps;
  const checkErrors: { instance: string; error: string; server: string }[] = [];
  const found = new Map<TenantInstance, WebhookConfig | null>();
  await pMap(toCheck, async (t) => {
    try {
      found.set(t, await t.client.findWebhook(t.name));
    } catch (error) {
      checkErrors.push({ instance: t.name, error: describeError(error), server: t.server });
    }
  }, { concurrency: options.concurrency });
  const violations: Violation[] = [];
  for (const t of toCheck) {
    if (!found.has(t)) continue;
    const { name, slug, server } = t;
    const hook = found.get(t) ?? null;
    const expected = await t.client.expectedWebhook(slug);
    const check = webhookCheck(hook, expected);
    if (check.ok) continue;
    const tokenHeader = hook?.headers?.[WEBHOOK_TOKEN_HEADER] ? "present" : "absent";
    const routesTo = hook?.url ? slugFromWebhookUrl(hook.url, config.webhookBaseUrl) : null;
    violations.push(violation({
      kind: "instance_webhook_mismatch",
      tenant: slug,
      instance: name,
      server,
      current: hook ? { url: redactWebhookUrl(hook.url), enabled: hook.enabled, tokenHeader } : null,
      expected: {
        url: redactWebhookUrl(expected.url),
        enabled: true,
        // 1.8 stores no webhook headers: there the token is the URL's `?token=`
        tokenHeader: WEBHOOK_TOKEN_HEADER in expected.headers ? "present" : "absent",
      },
      evidence: {
        urlOk: check.urlOk,
        tokenOk: check.tokenOk,
        enabledOk: check.enabled,
        routesTo: routesTo && routesTo !== slug ? routesTo : null,
        crossTenant: Boolean(routesTo && routesTo !== slug),
      },
      fix: [{ action: "set_webhook", tenant: slug, instance: name, url: redactWebhookUrl(expected.url), server }],
    }));
  }
  return { violations, checked: found.size, checkErrors };
}

/** Phase 3e: cross-tenant attempts the receiver logged. */
function crossTenantViolations(rows: CrossRow[], home: (slug: string) => Home): Violation[] {
  return rows.filter((r): r is CrossRow & { tenant_slug: string } => Boolean(r.tenant_slug)).map((r) =>
    violation({
      kind: "cross_tenant_attempts",
      tenant: r.tenant_slug,
      instance: null,
      server: home(r.tenant_slug).server,
      current: { attempts: Number(r.attempts) },
      expected: { attempts: 0 },
      evidence: {
        firstAt: new Date(r.first_at).toISOString(),
        lastAt: new Date(r.last_at).toISOString(),
        sample: r.sample,
      },
      fix: [{ action: "acknowledge_cross_tenant", tenant: r.tenant_slug, until: r.last_at_exact }],
      notes: ["the receiver rejected these events; their source is an instance webhook pointing at this tenant"],
    })
  );
}

/** Phase 4 (apply): each violation's steps under its tenant's lease, in order, stopping at a failed one. */
async function applyFixes(
  deps: Deps,
  violations: Violation[],
  options: { actor: string; fleet: Fleet },
): Promise<void> {
  const { actor, fleet } = options;
  for (const v of violations) {
    const applied: NonNullable<Violation["applied"]> = v.applied = [];
    if (!v.fix.length) continue; // nothing is safe to do automatically: its notes say what a human should do
    const operationId = crypto.randomUUID();
    const lease = { slug: v.tenant ?? `instance:${v.instance}`, action: "isolation-fix", actor, operationId };
    const attempt = await tryTenantLease(deps.sql, lease, async (held) => {
      for (const step of v.fix) {
        try {
          await held.confirm(); // the lease is still this fix's (renewed): else stop before the step
        } catch (error) {
          applied.push({ step: describeStep(step), result: "skipped", error: `not started: ${describeError(error)}` });
          break;
        }
        const outcome = await applyStep(deps, step, { actor, operationId, kind: v.kind, fleet });
        applied.push({ step: describeStep(step), ...outcome });
        if (outcome.result === "failed") break;
      }
    });
    if (!attempt.acquired) {
      applied.push({
        step: "lease",
        result: "skipped",
        error: `another operation (${attempt.holder.action}) is running on this tenant`,
      });
    }
  }
}

/** Phase 4 (dry run): each violation's plan in the audit trail. */
async function recordPlans(
  sql: Sql,
  violations: Violation[],
  options: { actor: string; runId: string },
): Promise<void> {
  for (const v of violations) {
    await recordAction(sql, {
      actor: options.actor,
      action: `isolation.${v.kind}`,
      tenantSlug: v.tenant,
      operationId: options.runId,
      dryRun: true,
      before: { instance: v.instance, server: v.server, current: v.current },
      after: { planned: v.fixText, ...(v.fix.length ? {} : { kept: v.notes ?? [] }) },
      result: "planned",
    });
  }
}

/** One server as the report shows it. */
interface ServerReport {
  name: string;
  url: string;
  isDefault: boolean;
  /** Whether its listing succeeded (false: `error`; its tenants got no instance step). */
  listed: boolean;
  instances: number | null;
  error: string | null;
}

/**
 * The job's outcome: error when no server could be listed or a webhook could not be read; degraded when some server
 * could not be listed, for failed fixes, for findings no automatic fix is safe for, or an unfixed dry run.
 */
function auditOutcome(
  violations: Violation[],
  options: {
    apply: boolean;
    scope: string[] | "all";
    view: FleetView;
    webhooksChecked: number;
    checkErrors: { instance: string; error: string; server: string }[];
    unchecked: UncheckedInstance[];
  },
): JobOutcome {
  const { apply, view, checkErrors } = options;
  const failedSteps = violations.flatMap((v) => (v.applied ?? []).filter((a) => a.result !== "ok"));
  const needsHuman = violations.filter((v) => !v.fix.length).length;
  const byKind: Record<string, number> = {};
  for (const v of violations) byKind[v.kind] = (byKind[v.kind] ?? 0) + 1;
  const listed = view.listings.filter((l) => l.instances !== null);
  const unlisted = view.listings.filter((l) => l.instances === null);
  const servers: ServerReport[] = view.listings.map((l) => ({
    name: l.server.name,
    url: l.server.url,
    isDefault: l.server.isDefault,
    listed: l.instances !== null,
    instances: l.instances?.length ?? null,
    error: l.error,
  }));
  const listingError = unlisted.length
    ? unlisted.map((l) => l.error).join("; ")
    : view.listings.length
    ? null
    : "Cannot audit Evolution: no enabled server in the registry";
  const report = {
    apply,
    scope: options.scope,
    violationCount: violations.length,
    byKind,
    violations,
    fixed: apply ? violations.filter((v) => v.fix.length && v.applied?.every((a) => a.result === "ok")).length : 0,
    failedSteps: failedSteps.length,
    /** Violations no automatic fix is safe for (kept; their notes say what to do). */
    needsHuman,
    evolution: {
      /** Every enabled server was listed. */
      checked: unlisted.length === 0 && view.listings.length > 0,
      instances: listed.length ? listed.reduce((n, l) => n + l.instances!.length, 0) : null,
      beingRemoved: view.listings.flatMap((l) => l.beingRemoved),
      webhooksChecked: options.webhooksChecked,
      /** Instances of existing tenants whose slug predates the bundle's format: kept, their webhook not checked. */
      unchecked: options.unchecked,
      error: listingError,
      checkErrors,
      servers,
      /** Servers whose listing failed: their tenants got no instance step anywhere. */
      unreachable: unlisted.map((l) => l.server.name),
      /** Disabled servers: not listed, their tenants not audited on Evolution. */
      disabled: view.fleet.disabled,
    },
  };
  if (checkErrors.length || !listed.length) {
    return {
      status: "error",
      report,
      error: listingError ?? `Cannot read the webhook of ${checkErrors.length} instance(s): ${checkErrors[0].error}`,
    };
  }
  if (failedSteps.length) {
    return { status: "degraded", report, error: `${failedSteps.length} fix step(s) did not complete` };
  }
  if (listingError) return { status: "degraded", report, error: listingError };
  if (apply && needsHuman) {
    return { status: "degraded", report, error: `${needsHuman} finding(s) need a human (see their notes)` };
  }
  return { status: violations.length && !apply ? "degraded" : "ok", report };
}

/** The slug a URL of the form `{base}/api/whatsapp/webhook/{slug}[/...]` names, or null (`base`: normalised). */
function slugFromWebhookUrl(url: string, base: string): string | null {
  const root = `${base}/api/whatsapp/webhook/`;
  if (!url.startsWith(root)) return null;
  const slug = url.slice(root.length).split(/[/?#]/)[0];
  return Slug.safeParse(slug).success ? slug : null;
}

type StepOutcome = { result: "ok" | "failed" | "skipped"; error?: string };

/** Thrown inside a step to end it as `skipped` (recorded with the reason). */
class StepSkipped extends Error {
  constructor(message: string, readonly before: unknown = null) {
    super(message);
    this.name = "StepSkipped";
  }
}

async function applyStep(
  deps: Deps,
  step: FixStep,
  ctx: { actor: string; operationId: string; kind: ViolationKind; fleet: Fleet },
): Promise<StepOutcome> {
  const { sql, config } = deps;
  const action = `isolation.${step.action}`;
  const tenantSlug = step.tenant;
  const audit = (result: "ok" | "failed" | "skipped", before: unknown, after: unknown, error?: string) =>
    recordAction(sql, {
      actor: ctx.actor,
      action,
      tenantSlug,
      operationId: ctx.operationId,
      before,
      after: { ...(after as object), violation: ctx.kind },
      result,
      error,
    });
  /** The client of a server of this run's fleet (a listed server: every step names one). */
  const clientOf = (server: string): EvolutionClient => {
    const s = ctx.fleet.servers.find((x) => x.name === server);
    if (!s?.client) throw new StepSkipped(`server '${server}' is not an enabled server of the registry any more`);
    return s.client;
  };
  /** The tenant's server now (read again: it may have moved since the listing). */
  const homeNow = async (slug: string) =>
    (await tenantHomes(deps, [slug])).get(slug) ?? { server: DEFAULT_SERVER, source: "default" as const };
  try {
    switch (step.action) {
      case "create_instance": {
        const home = await homeNow(step.tenant);
        let client: EvolutionClient;
        let server = step.server;
        let placed: ServerView | null = null;
        if (home.source === "default" && step.placement) {
          const place = await placeTenant(deps, ctx.fleet);
          if (!place) {
            throw new Error(
              `Cannot place tenant '${step.tenant}' as no Evolution server takes new tenants (every one is disabled ` +
                `or draining): enable or undrain one, or register another`,
            );
          }
          if (!place.client) throw new StepSkipped(`server '${place.server.name}' cannot be called (no key in Vault)`);
          const [t] = await sql<{ id: string }[]>`select id from public.tenants where slug = ${step.tenant}`;
          if (!t) throw new StepSkipped(`tenant '${step.tenant}' is gone`);
          await commitPlacement(sql, t.id, place.server); // linked before the create, as fix does
          client = place.client;
          server = place.server.name;
          placed = place.server;
        } else {
          if (home.server !== step.server) {
            throw new StepSkipped(
              `tenant '${step.tenant}' is on server '${home.server ?? "(unregistered)"}' now, not '${step.server}'`,
            );
          }
          client = clientOf(step.server);
        }
        const where = { server, ...(placed ? { placedBy: "placement" } : {}) };
        try {
          const created = await createWhenFree(client, step.tenant, step.instance);
          await audit("ok", { instance: null, server }, {
            instance: created.name,
            state: created.state,
            waitedMs: created.waitedMs,
            ...where,
          });
        } catch (error) {
          if (!isEvolutionError(error, "name_in_use")) throw error;
          // Someone created it since the listing: make sure its webhook is right instead.
          const hook = await client.expectedWebhook(step.tenant);
          await client.setWebhook(step.instance, { url: hook.url, headers: hook.headers, enabled: true });
          await audit("ok", { instance: step.instance, existed: true, server }, {
            webhook: redactWebhookUrl(hook.url),
            ...where,
          });
        }
        return { result: "ok" };
      }
      case "update_config": {
        const rows = await sql.begin(async (tx) => {
          const [before] = await tx<{ config: Record<string, unknown> }[]>`
            select ti.config from public.tenant_integrations ti join public.tenants t on t.id = ti.tenant_id
            where t.slug = ${step.tenant} and ti.integration_type = 'whatsapp' for update of ti`;
          if (!before) return null;
          const after = { ...before.config, ...step.set };
          await tx`
            update public.tenant_integrations ti set config = ${tx.json(after as never)}, updated_at = now()
            from public.tenants t
            where t.id = ti.tenant_id and t.slug = ${step.tenant} and ti.integration_type = 'whatsapp'
              and ti.config is distinct from ${tx.json(after as never)}`;
          return { before: before.config, after };
        });
        if (!rows) {
          await audit("skipped", null, { reason: "the integration row is gone" });
          return { result: "skipped", error: "the integration row is gone" };
        }
        await audit("ok", rows.before, rows.after);
        return { result: "ok" };
      }
      case "delete_instance": {
        const client = clientOf(step.server);
        const before = { instance: step.instance, server: step.server };
        const checked: Record<string, unknown> = {};
        if (step.duplicateOf) {
          // A duplicate of the tenant's own: read again, on both servers, that deleting this copy loses nothing.
          const home = await homeNow(step.tenant!);
          if (home.server !== step.duplicateOf) {
            throw new StepSkipped(
              `tenant '${step.tenant}' is on server '${home.server ?? "(unregistered)"}' now, not ` +
                `'${step.duplicateOf}': this copy is kept`,
              before,
            );
          }
          const state = async (c: EvolutionClient) =>
            await c.connectionState(step.instance).catch((e) => {
              if (isEvolutionError(e, "not_found")) return null;
              throw e;
            });
          const homeState = await state(clientOf(step.duplicateOf));
          if (homeState === null) {
            throw new StepSkipped(
              `the instance on the tenant's server '${step.duplicateOf}' is gone: this copy is kept`,
              before,
            );
          }
          const thisState = homeState === "open" ? null : await state(client);
          if (thisState === "open") {
            throw new StepSkipped(
              `this copy is connected now and the one on '${step.duplicateOf}' is not (${homeState}): it is kept`,
              before,
            );
          }
          Object.assign(checked, { duplicateOf: step.duplicateOf, tenantServerState: homeState });
        } else {
          // The one rule, read again just before deleting: a tenant created since the facts were read owns its name.
          const owner = tenantOfInstance(
            step.instance,
            config.instancePrefix,
            await existingTenants(sql, [step.instance], config.instancePrefix),
          );
          if (owner !== null) {
            throw new StepSkipped(`instance '${step.instance}' belongs to tenant '${owner}': it is kept`, before);
          }
        }
        const r = await deleteInstance(client, step.instance); // a dead socket is restarted first
        await audit("ok", before, {
          deleted: r.deleted, // false: it was already gone
          ...checked,
          ...(r.recovery ? { recovery: r.recovery } : {}),
        });
        return { result: "ok" };
      }
      case "set_webhook": {
        const client = clientOf(step.server);
        const hook = await client.expectedWebhook(step.tenant);
        const before = await client.findWebhook(step.instance).catch(() => null);
        const after = await client.setWebhook(step.instance, {
          url: hook.url,
          headers: hook.headers,
          enabled: true,
        });
        await audit(
          "ok",
          before ? { url: redactWebhookUrl(before.url), enabled: before.enabled, server: step.server } : null,
          {
            url: redactWebhookUrl(after.url),
            enabled: after.enabled,
            instance: instanceName(step.tenant, config.instancePrefix) === step.instance ? step.instance : null,
            server: step.server,
          },
        );
        return { result: "ok" };
      }
      case "acknowledge_cross_tenant": {
        await audit("ok", null, { until: step.until });
        return { result: "ok" };
      }
    }
  } catch (error) {
    if (error instanceof StepSkipped) {
      await audit("skipped", error.before, { reason: error.message }).catch(() => {});
      return { result: "skipped", error: error.message };
    }
    const message = describeError(error);
    await audit("failed", null, { step: step.action, ...("server" in step ? { server: step.server } : {}) }, message)
      .catch(() => {});
    return { result: "failed", error: message };
  }
}

/** The `isolation-audit` job. */
export const isolationAudit: JobDefinition<typeof IsolationAuditInput> = {
  name: "isolation-audit",
  input: IsolationAuditInput,
  schedule: "0 6 * * *",
  sampleInput: { apply: false },
  summarize(r) {
    if (!("violationCount" in r)) return "";
    // deno-lint-ignore no-explicit-any
    const evo = (r.evolution as any) ?? {};
    const unreachable: string[] = evo.unreachable ?? [];
    return `${r.violationCount} violation(s)${r.apply ? `, ${r.fixed} fixed` : ' (dry run: {"apply":true} fixes)'}; ` +
      `${evo.webhooksChecked ?? 0} webhook(s) checked on ${(evo.servers ?? []).length} server(s)` +
      (unreachable.length ? `; unreachable: ${unreachable.join(", ")}` : "");
  },
  isDryRun: (input) => !input.apply,
  run({ deps, input, runId, trigger }) {
    return runIsolationAudit(deps, { runId, input, actor: `job:isolation-audit:${trigger}` });
  },
};
