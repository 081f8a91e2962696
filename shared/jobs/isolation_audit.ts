/**
 * @module
 * The `isolation-audit` job (daily: the seed's naming, webhook and cross-tenant checks). Violations come from both sides:
 *
 * - the database, through the SQL views: `invalid_prefix` and `slug_mismatch` (`maintenance.naming_violations`),
 *   `webhook_url_mismatch` (`maintenance.webhook_mismatches`, the stored config URL);
 * - Evolution: `unknown_tenant_instance` (a prefixed instance whose name maps to no existing tenant and that no row
 *   names; which tenant a name maps to is the one rule of `tenantOfInstance` in naming.ts, shared with
 *   orphan-cleanup, so a tenant whose slug predates the bundle's format, `Legacy_Co` of `revalya-Legacy_Co`, keeps
 *   its instance),
 *   `instance_webhook_mismatch` (the webhook actually configured on a tenant's instance, from `findWebhook` with
 *   bounded concurrency, is not the expected URL and token header, or is disabled; `routesTo` names the other tenant
 *   when it points at one), and, on `slug_mismatch`, the tenant the named instance really belongs to;
 * - the webhook receiver: `cross_tenant_attempts` logged in the last 24 h (`maintenance.cross_tenant_attempts`).
 *
 * A dry run (the default) lists every violation with the exact steps that would fix it. `{"apply": true}` runs them,
 * idempotently, one tenant lease at a time, each step recorded in `maintenance.actions_audit`. The order is the safe
 * one (the seed deleted first): create the right instance, point the config row at it, then delete the wrong one,
 * and never an instance that belongs to an existing tenant (checked again just before each deletion). Webhooks are corrected in place with `setWebhook` (recreating
 * the instance would log the number out). Cross-tenant attempts are acknowledged once their cause is fixed.
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
import type { InstanceSummary, WebhookConfig } from "../evolution/types.ts";
import { describeError, isEvolutionError } from "../evolution/errors.ts";
import { webhookCheck } from "../evolution/webhook_check.ts";
import { tryTenantLease } from "../tenant_lease.ts";
import type { JobDefinition, JobOutcome } from "./runner.ts";
import { createWhenFree, deleteInstance } from "../evolution/lifecycle.ts";

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
  | "instance_webhook_mismatch"
  | "cross_tenant_attempts";

/** One step of a fix. */
export type FixStep =
  | { action: "create_instance"; tenant: string; instance: string }
  | { action: "update_config"; tenant: string; set: { instance_name?: string; webhook_url?: string } }
  | { action: "delete_instance"; tenant: string | null; instance: string }
  | { action: "set_webhook"; tenant: string; instance: string; url: string }
  | { action: "acknowledge_cross_tenant"; tenant: string; until: string };

/** One violation, with the steps that fix it and (after apply) how each went. */
export interface Violation {
  kind: ViolationKind;
  tenant: string | null;
  instance: string | null;
  current: unknown;
  expected: unknown;
  evidence?: Record<string, unknown>;
  fix: FixStep[];
  /** Human-readable form of `fix`. */
  fixText: string[];
  notes?: string[];
  applied?: { step: string; result: "ok" | "failed" | "skipped"; error?: string }[];
}

function describeStep(s: FixStep): string {
  switch (s.action) {
    case "create_instance":
      return `create instance '${s.instance}' on Evolution with the tenant's webhook URL and token header`;
    case "update_config":
      return `update tenant '${s.tenant}' config: ${Object.entries(s.set).map(([k, v]) => `${k} = '${v}'`).join(", ")}`;
    case "delete_instance":
      return `delete instance '${s.instance}' on Evolution`;
    case "set_webhook":
      return `set the webhook of '${s.instance}' to '${s.url}' with the tenant's token header, enabled`;
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
}

/**
 * What Evolution says: every instance (null when it could not be listed), by name, and why not. `beingRemoved`: the
 * listed instances we deleted recently (audited), which Evolution keeps listing until its own clean-up ends; they
 * are left out of `instances` and reported apart.
 */
interface InstanceListing {
  instances: InstanceSummary[] | null;
  byName: Map<string, InstanceSummary>;
  error: string | null;
  beingRemoved: { instance: string; deletedAt: string }[];
}

/** A tenant's instance whose webhook is to be read. */
interface TenantInstance {
  name: string;
  slug: string;
}

/** Runs one audit (the job's logic): load the facts, find the violations, then apply their fixes or record the plan. */
export async function runIsolationAudit(
  deps: Deps,
  ctx: { runId: string; input: IsolationAuditInput; actor?: string },
): Promise<JobOutcome> {
  const { sql, evolution, config } = deps;
  const { apply, concurrency } = ctx.input;
  const scope = ctx.input.tenants ? new Set<string>(ctx.input.tenants) : null;
  const actor = ctx.actor ?? "job:isolation-audit";
  const prefix = config.instancePrefix;

  const facts = await loadAuditFacts(sql, scope);
  const listing = await listInstances(sql, evolution, prefix);
  const naming = namingViolations(facts, listing, { prefix, webhookBaseUrl: config.webhookBaseUrl });
  const stored = storedWebhookViolations(facts.hooks);
  const instances = classifyInstances(facts, listing, { scope, prefix });
  const webhooks = await instanceWebhookViolations(deps, instances.toCheck, { concurrency });
  const cross = crossTenantViolations(facts.cross);
  const violations = [...naming, ...stored, ...instances.violations, ...webhooks.violations, ...cross];

  if (apply) await applyFixes(deps, violations, { actor });
  else await recordPlans(sql, violations, { actor, runId: ctx.runId });
  return auditOutcome(violations, {
    apply,
    scope: ctx.input.tenants ?? "all",
    listing,
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
async function loadAuditFacts(sql: Sql, scope: Set<string> | null): Promise<AuditFacts> {
  const naming = (await sql<NamingRow[]>`
    select tenant_slug, violation, current_name, expected_name from maintenance.naming_violations
    order by tenant_slug`).filter((r) => inScope(scope, r.tenant_slug));
  const hooks = (await sql<WebhookRow[]>`
    select tenant_slug, current_url, expected_url from maintenance.webhook_mismatches order by tenant_slug`)
    .filter((r) => inScope(scope, r.tenant_slug));
  const tenants = new Set(
    (await sql<{ slug: string }[]>`select slug from public.tenants`).map((r) => r.slug),
  );
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
  return { naming, hooks, cross, tenants, claims };
}

/**
 * Phase 2: every Evolution instance in one call, minus those an audited delete of ours is still removing (a deleted
 * instance stays listed for seconds, or ~20 min while Evolution retries a failing remove.instance delivery).
 */
async function listInstances(sql: Sql, evolution: EvolutionClient, prefix: string): Promise<InstanceListing> {
  let instances: InstanceSummary[] | null = null;
  let error: string | null = null;
  try {
    instances = await evolution.fetchInstances();
  } catch (e) {
    error = `Cannot list Evolution instances: ${describeError(e)}`;
  }
  const ours = (instances ?? []).filter((i) => i.name.startsWith(prefix)).map((i) => i.name);
  const removing = ours.length
    ? await sql<{ instance_name: string; deleted_at: Date }[]>`
      select instance_name, deleted_at from maintenance.instances_being_removed(${ours}::text[])`
    : [];
  const gone = new Set(removing.map((r) => r.instance_name));
  if (instances) instances = instances.filter((i) => !gone.has(i.name));
  return {
    instances,
    byName: new Map((instances ?? []).map((i) => [i.name, i])),
    error,
    beingRemoved: removing.map((r) => ({ instance: r.instance_name, deletedAt: new Date(r.deleted_at).toISOString() }))
      .sort((a, b) => a.instance.localeCompare(b.instance)),
  };
}

/** Phase 3a: naming violations (DB view), with what Evolution says about both names. */
function namingViolations(
  facts: AuditFacts,
  listing: InstanceListing,
  options: { prefix: string; webhookBaseUrl: string },
): Violation[] {
  const { tenants, claims } = facts;
  const listed = listing.instances !== null;
  const exists = (name: string | null) => name !== null && listing.byName.has(name);
  return facts.naming.map((r) => {
    const current = r.current_name;
    const owner = current ? tenantOfInstance(current, options.prefix, tenants) : null;
    const ownedByOther = (owner !== null && owner !== r.tenant_slug) ||
      (current !== null && (claims.get(current) ?? []).some((s) => s !== r.tenant_slug));
    const fix: FixStep[] = [];
    const notes: string[] = [];
    if (listed && !exists(r.expected_name)) {
      fix.push({ action: "create_instance", tenant: r.tenant_slug, instance: r.expected_name });
    }
    fix.push({
      action: "update_config",
      tenant: r.tenant_slug,
      set: { instance_name: r.expected_name, webhook_url: webhookUrl(r.tenant_slug, options.webhookBaseUrl) },
    });
    if (current && ownedByOther) {
      notes.push(`instance '${current}' belongs to tenant '${owner ?? claims.get(current)?.[0]}': it is kept`);
    } else if (current && listed && exists(current)) {
      fix.push({ action: "delete_instance", tenant: r.tenant_slug, instance: current });
    }
    if (!listed) notes.push("Evolution could not be read: the instance steps are decided when it answers");
    return violation({
      kind: r.violation,
      tenant: r.tenant_slug,
      instance: current,
      current,
      expected: r.expected_name,
      evidence: {
        currentInstanceExists: listed ? exists(current) : null,
        expectedInstanceExists: listed ? exists(r.expected_name) : null,
        currentInstanceMapsTo: current ? instanceSuffix(current, options.prefix) : null,
        currentInstanceTenant: owner,
      },
      fix,
      notes: notes.length ? notes : undefined,
    });
  });
}

/** Phase 3b: stored webhook URLs (DB view). */
function storedWebhookViolations(rows: WebhookRow[]): Violation[] {
  return rows.map((r) =>
    violation({
      kind: "webhook_url_mismatch",
      tenant: r.tenant_slug,
      instance: null,
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
}

/**
 * Phase 3c: the prefixed instances in scope, as violations (named for no existing tenant, and named by no row) or as
 * tenants' instances whose webhook is to be read. Instances without the prefix are not ours: never touched. An
 * instance of an existing tenant whose slug is not in the bundle's format (`revalya-Legacy_Co`) is the tenant's:
 * kept, and listed as `unchecked` (its webhook token cannot be derived from such a slug, and the receiver refuses it).
 */
function classifyInstances(
  facts: AuditFacts,
  listing: InstanceListing,
  options: { scope: Set<string> | null; prefix: string },
): { violations: Violation[]; toCheck: TenantInstance[]; unchecked: UncheckedInstance[] } {
  const violations: Violation[] = [];
  const toCheck: TenantInstance[] = [];
  const unchecked: UncheckedInstance[] = [];
  for (const inst of listing.instances ?? []) {
    const suffix = instanceSuffix(inst.name, options.prefix);
    if (suffix === null) continue;
    const owner = tenantOfInstance(inst.name, options.prefix, facts.tenants);
    if (!inScope(options.scope, owner ?? suffix)) continue;
    if (owner === null) {
      if ((facts.claims.get(inst.name) ?? []).length) continue; // a row names it: reported as that row's naming violation
      violations.push(violation({
        kind: "unknown_tenant_instance",
        tenant: null,
        instance: inst.name,
        current: { instance: inst.name, state: inst.state },
        expected: null,
        evidence: { mapsToSlug: suffix, tenantExists: false },
        fix: [{ action: "delete_instance", tenant: null, instance: inst.name }],
      }));
      continue;
    }
    if (!isSlug(owner)) {
      unchecked.push({
        instance: inst.name,
        tenant: owner,
        reason: "the tenant's slug is not in the bundle's format (lowercase letters, digits, inner hyphens): its " +
          "instance is kept, and its webhook is not checked (no token derives from such a slug)",
      });
      continue;
    }
    toCheck.push({ name: inst.name, slug: owner });
  }
  return { violations, toCheck, unchecked };
}

/**
 * Phase 3d: the webhook configured on each tenant's instance (`findWebhook`, bounded concurrency) against the
 * expected one; `routesTo` names the other tenant a wrong URL points at.
 */
async function instanceWebhookViolations(
  deps: Deps,
  toCheck: TenantInstance[],
  options: { concurrency: number },
): Promise<{ violations: Violation[]; checked: number; checkErrors: { instance: string; error: string }[] }> {
  const { evolution, config } = deps;
  const checkErrors: { instance: string; error: string }[] = [];
  const found = new Map<string, WebhookConfig | null>();
  await pMap(toCheck, async ({ name }) => {
    try {
      found.set(name, await evolution.findWebhook(name));
    } catch (error) {
      checkErrors.push({ instance: name, error: describeError(error) });
    }
  }, { concurrency: options.concurrency });
  const violations: Violation[] = [];
  for (const { name, slug } of toCheck) {
    if (!found.has(name)) continue;
    const hook = found.get(name) ?? null;
    const expected = await evolution.expectedWebhook(slug);
    const check = webhookCheck(hook, expected);
    if (check.ok) continue;
    const tokenHeader = hook?.headers?.[WEBHOOK_TOKEN_HEADER] ? "present" : "absent";
    const routesTo = hook?.url ? slugFromWebhookUrl(hook.url, config.webhookBaseUrl) : null;
    violations.push(violation({
      kind: "instance_webhook_mismatch",
      tenant: slug,
      instance: name,
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
      fix: [{ action: "set_webhook", tenant: slug, instance: name, url: redactWebhookUrl(expected.url) }],
    }));
  }
  return { violations, checked: found.size, checkErrors };
}

/** Phase 3e: cross-tenant attempts the receiver logged. */
function crossTenantViolations(rows: CrossRow[]): Violation[] {
  return rows.filter((r): r is CrossRow & { tenant_slug: string } => Boolean(r.tenant_slug)).map((r) =>
    violation({
      kind: "cross_tenant_attempts",
      tenant: r.tenant_slug,
      instance: null,
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
async function applyFixes(deps: Deps, violations: Violation[], options: { actor: string }): Promise<void> {
  const { actor } = options;
  for (const v of violations) {
    const applied: NonNullable<Violation["applied"]> = v.applied = [];
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
        const outcome = await applyStep(deps, step, { actor, operationId, kind: v.kind });
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
      before: { instance: v.instance, current: v.current },
      after: { planned: v.fixText },
      result: "planned",
    });
  }
}

/** The job's outcome: error when Evolution could not be read, degraded for failed fixes or an unfixed dry run. */
function auditOutcome(
  violations: Violation[],
  options: {
    apply: boolean;
    scope: string[] | "all";
    listing: InstanceListing;
    webhooksChecked: number;
    checkErrors: { instance: string; error: string }[];
    unchecked: UncheckedInstance[];
  },
): JobOutcome {
  const { apply, listing, checkErrors } = options;
  const failedSteps = violations.flatMap((v) => (v.applied ?? []).filter((a) => a.result !== "ok"));
  const byKind: Record<string, number> = {};
  for (const v of violations) byKind[v.kind] = (byKind[v.kind] ?? 0) + 1;
  const report = {
    apply,
    scope: options.scope,
    violationCount: violations.length,
    byKind,
    violations,
    fixed: apply ? violations.filter((v) => v.applied?.every((a) => a.result === "ok")).length : 0,
    failedSteps: failedSteps.length,
    evolution: {
      checked: listing.instances !== null,
      instances: listing.instances?.length ?? null,
      beingRemoved: listing.beingRemoved,
      webhooksChecked: options.webhooksChecked,
      /** Instances of existing tenants whose slug predates the bundle's format: kept, their webhook not checked. */
      unchecked: options.unchecked,
      error: listing.error,
      checkErrors,
    },
  };
  if (listing.error || checkErrors.length) {
    return {
      status: "error",
      report,
      error: listing.error ?? `Cannot read the webhook of ${checkErrors.length} instance(s): ${checkErrors[0].error}`,
    };
  }
  if (failedSteps.length) {
    return { status: "degraded", report, error: `${failedSteps.length} fix step(s) did not complete` };
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

async function applyStep(
  deps: Deps,
  step: FixStep,
  ctx: { actor: string; operationId: string; kind: ViolationKind },
): Promise<{ result: "ok" | "failed" | "skipped"; error?: string }> {
  const { sql, evolution, config } = deps;
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
  try {
    switch (step.action) {
      case "create_instance": {
        try {
          const created = await createWhenFree(evolution, step.tenant, step.instance);
          await audit("ok", { instance: null }, {
            instance: created.name,
            state: created.state,
            waitedMs: created.waitedMs,
          });
        } catch (error) {
          if (!isEvolutionError(error, "name_in_use")) throw error;
          // Someone created it since the listing: make sure its webhook is right instead.
          const hook = await evolution.expectedWebhook(step.tenant);
          await evolution.setWebhook(step.instance, { url: hook.url, headers: hook.headers, enabled: true });
          await audit("ok", { instance: step.instance, existed: true }, { webhook: redactWebhookUrl(hook.url) });
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
        // The one rule, read again just before deleting: a tenant created since the facts were read owns its name.
        const owner = tenantOfInstance(
          step.instance,
          config.instancePrefix,
          await existingTenants(sql, [step.instance], config.instancePrefix),
        );
        if (owner !== null) {
          const reason = `instance '${step.instance}' belongs to tenant '${owner}': it is kept`;
          await audit("skipped", { instance: step.instance }, { reason });
          return { result: "skipped", error: reason };
        }
        const r = await deleteInstance(evolution, step.instance); // a dead socket is restarted first
        await audit("ok", { instance: step.instance }, {
          deleted: r.deleted, // false: it was already gone
          ...(r.recovery ? { recovery: r.recovery } : {}),
        });
        return { result: "ok" };
      }
      case "set_webhook": {
        const hook = await evolution.expectedWebhook(step.tenant);
        const before = await evolution.findWebhook(step.instance).catch(() => null);
        const after = await evolution.setWebhook(step.instance, {
          url: hook.url,
          headers: hook.headers,
          enabled: true,
        });
        await audit("ok", before ? { url: redactWebhookUrl(before.url), enabled: before.enabled } : null, {
          url: redactWebhookUrl(after.url),
          enabled: after.enabled,
          instance: instanceName(step.tenant, config.instancePrefix) === step.instance ? step.instance : null,
        });
        return { result: "ok" };
      }
      case "acknowledge_cross_tenant": {
        await audit("ok", null, { until: step.until });
        return { result: "ok" };
      }
    }
  } catch (error) {
    const message = describeError(error);
    await audit("failed", null, { step: step.action }, message).catch(() => {});
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
    const checked = (r.evolution as any)?.webhooksChecked ?? 0;
    return `${r.violationCount} violation(s)${r.apply ? `, ${r.fixed} fixed` : ' (dry run: {"apply":true} fixes)'}; ` +
      `${checked} webhook(s) checked on Evolution`;
  },
  isDryRun: (input) => !input.apply,
  run({ deps, input, runId, trigger }) {
    return runIsolationAudit(deps, { runId, input, actor: `job:isolation-audit:${trigger}` });
  },
};
