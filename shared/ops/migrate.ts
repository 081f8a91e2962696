/**
 * @module
 * `migrate` (the seed's migration procedure) a tenant's instance to another Evolution server (`apiUrl`, `apiKey`).
 *
 * Steps: back up the config row → check the new server (reachable, key accepted, name free, and, when it is in the
 * registry, not disabled; draining only stops automatic placements, an explicit move is the operator's call) →
 * create the instance there (tenant's webhook and token) → verify its webhook → save the new config (URL in the row,
 * key in Vault, the tenant's link in `maintenance.tenant_servers` to the registered server of that URL, registered
 * now under its host's name when it is not yet; one transaction) → retire the old instance. A dry run (the default)
 * stops after the check. If any step fails the rollback is real, unlike the seed's comment: the config row is
 * restored byte for byte and the stored key dropped, the tenant's link put back (and a server row this migration
 * registered removed), the instance created on the new server is deleted, and the old instance is reconnected if it
 * is no longer open; the response names the failing step and each rollback step's outcome. Except when retiring the
 * old instance times out: its deletion may still land, so the tenant stays on the new server (`needs_human`, nothing
 * undone).
 * Likewise when the old server cannot be reached at all and the caller said `leaveOldIfUnreachable` (moving away from
 * a dead server is the main reason to migrate); without it, an unreachable old server rolls the migration back.
 *
 * The new key is never logged, stored in plain text, put in the audit trail or returned: it lives in Vault only.
 */
import { normalizeBaseUrl } from "../config.ts";
import type { Deps } from "../deps.ts";
import { ValidationError } from "../errors.ts";
import type { CreatedInstance, EvolutionClient } from "../evolution/client.ts";
import { instanceName, type Slug } from "../naming.ts";
import { describeError, isEvolutionError } from "../evolution/errors.ts";
import { webhookCheck } from "../evolution/webhook_check.ts";
import { withTenantLease } from "../tenant_lease.ts";
import { connectSummary } from "./fix.ts";
import { isLeaseLost, Operation, type OperationResult, StepFailed, type StepReport } from "./operation.ts";
import { clientFor, type IntegrationConfig, loadTenant } from "./tenants.ts";
import { ensureDefaultServer, serverByUrl, type ServerView } from "../evolution/servers.ts";
import { awaitNameFree, createWhenFree, deleteInstance } from "../evolution/lifecycle.ts";

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

/** One migration's fixed facts, shared by its steps. */
interface Migration {
  deps: Deps;
  op: Operation;
  slug: Slug;
  tenantId: string;
  /** The tenant's instance name (the same on both servers). */
  name: string;
  /** The new server's URL (normalised). */
  to: string;
  apiKey: string;
  oldClient: EvolutionClient;
  newClient: EvolutionClient;
  leaveOldIfUnreachable: boolean;
}

/** What the steps have done so far: what a rollback must undo. */
interface Progress {
  rowId: string;
  /** The config row exactly as stored before the migration. */
  backup: IntegrationConfig;
  oldState: string | null;
  created: boolean;
  savedSecret: string | null;
  configSaved: boolean;
  /** The tenant's link as it was (server id, null: none) and the server row this migration registered, if any. */
  link: { previousServerId: string | null; createdServerId: string | null } | null;
  /** What `GET /` of the new server said (stored in the registry). */
  newVersion: string | null;
  retireAttempted: boolean;
}

/** The parts of a {@link MigrateResponse} every outcome shares. */
type ResponseBase = Pick<
  MigrateResponse,
  "action" | "tenant" | "operationId" | "dryRun" | "from" | "to" | "before" | "plan"
>;

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
  await ensureDefaultServer(deps);
  const oldClient = await clientFor(deps, tenant);
  if (to === oldClient.baseUrl) {
    throw new ValidationError(`Invalid 'apiUrl': the tenant is already on ${to}`, {
      details: [{ field: "apiUrl", message: "must be another server than the tenant's current one" }],
    });
  }
  const m: Migration = {
    deps,
    slug,
    tenantId: tenant.id,
    to,
    apiKey: options.apiKey,
    oldClient,
    newClient: deps.evolution.withCredentials(to, options.apiKey),
    name: instanceName(slug, config.instancePrefix),
    op: new Operation(sql, { action: "migrate", actor: options.actor, tenant: slug, dryRun: !options.apply }),
    leaveOldIfUnreachable: options.leaveOldIfUnreachable === true,
  };
  const lease = { slug, action: "migrate", actor: options.actor, operationId: m.op.id };
  return await withTenantLease(sql, lease, (held) => {
    m.op.hold(held); // every step first confirms the lease is still this migration's
    return runMigration(m, { tenantId: tenant.id, apply: options.apply });
  });
}

/** The steps under the tenant's lease: backup, check, then (apply) create, verify, save, retire; else roll back. */
async function runMigration(m: Migration, options: { tenantId: string; apply: boolean }): Promise<MigrateResponse> {
  const progress = await backUp(m, options.tenantId);
  const base: ResponseBase = {
    action: "migrate",
    tenant: m.slug,
    operationId: m.op.id,
    dryRun: !options.apply,
    from: m.oldClient.baseUrl,
    to: m.to,
    before: { config: progress.backup, oldInstanceState: progress.oldState },
    plan: migrationPlan(m),
  };
  await m.op.record("backup", "ok", { after: { config: progress.backup, oldInstanceState: progress.oldState } });
  try {
    progress.newVersion = await checkNewServer(m);
    if (!options.apply) {
      await m.op.record("plan", "planned", { after: { plan: base.plan } });
      return { ...base, ok: true, result: "planned", after: null, steps: m.op.steps, rollback: [] };
    }
    const inst = await createOnNewServer(m, progress);
    await verifyNewInstance(m);
    const newConfig = await saveNewConfig(m, progress);
    const leftBehind = await retireOldInstance(m, progress);
    if (leftBehind) {
      return {
        ...base,
        ok: false,
        result: "needs_human",
        failedStep: "retire_old_instance",
        error: leftBehind,
        after: { config: newConfig, oldInstanceState: "unknown", newInstanceState: inst.state },
        steps: m.op.steps,
        rollback: [],
      };
    }
    await dropOldKey(m, progress.backup);
    return {
      ...base,
      ok: true,
      result: "ok",
      after: { config: newConfig, oldInstanceState: null, newInstanceState: inst.state },
      steps: m.op.steps,
      rollback: [],
    };
  } catch (error) {
    return await rolledBack(m, progress, { base, error });
  }
}

/** Step 1: back up the config row exactly as stored (re-read under the lease) and the old instance's state. */
async function backUp(m: Migration, tenantId: string): Promise<Progress> {
  const [row] = await m.deps.sql<{ id: string; config: IntegrationConfig }[]>`
    select id, config from public.tenant_integrations
    where tenant_id = ${tenantId} and integration_type = 'whatsapp'`;
  const oldState = await m.oldClient.connectionState(m.name).catch((
    e,
  ) => (isEvolutionError(e, "not_found") ? null : "unknown"));
  return {
    rowId: row.id,
    backup: row.config,
    oldState,
    created: false,
    savedSecret: null,
    configSaved: false,
    link: null,
    newVersion: null,
    retireAttempted: false,
  };
}

/** The steps an applied migration takes, as the dry run shows them. */
function migrationPlan(m: Migration): string[] {
  return [
    `check ${m.to}: reachable, key accepted, '${m.name}' free`,
    `create '${m.name}' on ${m.to} with the tenant's webhook URL and token (v2: a header; v1.8: in the URL)`,
    `verify its webhook`,
    `save the config: evolution_api_url = '${m.to}', the key in Vault, the tenant's link to that server`,
    `retire '${m.name}' on ${m.oldClient.baseUrl} (logout + delete)`,
  ];
}

/**
 * Step 2: the new server answers, accepts the key, and has no instance of that name; a registered server must not be
 * disabled (out of service). Answers its version.
 */
async function checkNewServer(m: Migration): Promise<string> {
  const { newClient, name } = m;
  let registered: ServerView | null = null;
  const info = await m.op.run("check_new_server", async () => {
    registered = await serverByUrl(m.deps.sql, m.to);
    if (registered && !registered.enabled) {
      throw new Error(`server '${registered.name}' (${m.to}) is disabled: enable it first, or pick another server`);
    }
    const info = await newClient.serverInfo();
    let taken = false;
    try {
      taken = (await newClient.fetchInstances({ instanceName: name, absentOk: true })).some((i) => i.name === name);
    } catch (error) {
      if (!isEvolutionError(error, "not_found")) throw error;
    }
    if (taken) throw new Error(`instance '${name}' already exists on ${m.to}: not ours to replace`);
    return info;
  }, {
    after: (info) => ({ server: m.to, name: (registered as ServerView | null)?.name ?? null, version: info.version }),
  });
  return info.version;
}

/** Step 3: create the instance on the new server (the tenant's webhook and token). */
async function createOnNewServer(m: Migration, progress: Progress): Promise<CreatedInstance> {
  const inst = await m.op.run("create_on_new_server", () => createWhenFree(m.newClient, m.slug, m.name), {
    after: (c) => ({ instance: c.name, state: c.state, server: m.to, waitedMs: c.waitedMs }),
  });
  progress.created = true;
  return inst;
}

/** Step 4: the webhook the new server stored is the expected one. */
async function verifyNewInstance(m: Migration): Promise<void> {
  await m.op.run("verify_new_instance", async () => {
    const check = webhookCheck(await m.newClient.findWebhook(m.name), await m.newClient.expectedWebhook(m.slug));
    if (!check.ok) throw new Error(`the new instance's webhook is not the expected one (${JSON.stringify(check)})`);
    return check;
  }, { after: (c) => c });
}

/**
 * Step 5: save the new config (key to Vault, URL to the row) and the tenant's link to the server of that URL (the
 * registered one, or a row registered now with that key) in one transaction.
 */
async function saveNewConfig(m: Migration, progress: Progress): Promise<IntegrationConfig> {
  const newConfig: IntegrationConfig = { ...progress.backup, evolution_api_url: m.to };
  let server: { name: string; registered: boolean } | null = null;
  await m.op.run("save_config", () =>
    m.deps.sql.begin(async (tx) => {
      const [s] = await tx<
        { id: string }[]
      >`select maintenance.store_evolution_key(${m.slug}, ${m.apiKey}) as id`;
      newConfig.evolution_api_key_secret_id = s.id;
      await tx`
        update public.tenant_integrations set config = ${tx.json(newConfig as never)}, updated_at = now()
        where id = ${progress.rowId}`;
      const [link] = await tx<
        { server_id: string; server_name: string; previous_server_id: string | null; server_created: boolean }[]
      >`select * from maintenance.link_tenant_server(${m.tenantId}, ${m.to}, ${s.id}::uuid, ${progress.newVersion},
          'migrate')`;
      // known only once the transaction commits: a failed commit has nothing to undo
      return { secret: s.id, link };
    }).then(({ secret, link }) => {
      progress.savedSecret = secret;
      progress.link = {
        previousServerId: link.previous_server_id === null ? null : String(link.previous_server_id),
        createdServerId: link.server_created ? String(link.server_id) : null,
      };
      server = { name: link.server_name, registered: link.server_created };
    }), { before: progress.backup, after: () => ({ config: newConfig, server }) });
  progress.configSaved = true;
  return newConfig;
}

/**
 * Step 6: retire the old instance (Evolution logs it out first when open). Null when it is gone; otherwise the
 * message of a `needs_human` outcome. A timeout leaves the outcome unknown: the delete may land after we stopped
 * waiting, so rolling back to the old instance could leave the tenant with none anywhere. Then the tenant stays on
 * the new server and a human checks the old one (likewise an unreachable old server with `leaveOldIfUnreachable`).
 * Any other failure is thrown (the migration rolls back).
 */
async function retireOldInstance(m: Migration, progress: Progress): Promise<string | null> {
  const { oldClient, name, to } = m;
  progress.retireAttempted = true;
  try {
    await m.op.run("retire_old_instance", () => deleteInstance(oldClient, name), {
      before: { server: oldClient.baseUrl, state: progress.oldState },
      after: (r) => r,
    });
    return null;
  } catch (error) {
    if (!(error instanceof StepFailed)) throw error;
    const timedOut = isEvolutionError(error.cause, "timeout");
    const unreachable = isEvolutionError(error.cause, "unreachable") && m.leaveOldIfUnreachable;
    if (!timedOut && !unreachable) throw error;
    return timedOut
      ? `The tenant now uses ${to}, but retiring '${name}' on ${oldClient.baseUrl} timed out, so it may or ` +
        `may not be deleted: check that server and delete it if it is still there (${describeError(error.cause)})`
      : `The tenant now uses ${to}; ${oldClient.baseUrl} could not be reached to retire '${name}' ` +
        `(leaveOldIfUnreachable): delete it there when that server is back (${describeError(error.cause)})`;
  }
}

/** Step 7: the key the old config pointed at (a previous migration) is no longer needed. */
async function dropOldKey(m: Migration, backup: IntegrationConfig): Promise<void> {
  if (backup.evolution_api_key_secret_id) {
    await m.deps.sql`select maintenance.drop_evolution_key(${backup.evolution_api_key_secret_id}::uuid)`.catch(
      () => {},
    );
  }
}

/** A failed step: undo what was done, then answer which step failed and how the tenant is now. */
async function rolledBack(
  m: Migration,
  progress: Progress,
  options: { base: ResponseBase; error: unknown },
): Promise<MigrateResponse> {
  const { error } = options;
  const failedStep = error instanceof StepFailed ? error.step : "unknown";
  const message = describeError(error instanceof StepFailed ? error.cause : error);
  if (error instanceof StepFailed && isLeaseLost(error.cause)) {
    return await stoppedOnLostLease(m, progress, { base: options.base, error });
  }
  const { steps: rollback, complete } = await rollBack(m, progress);
  const [now] = await m.deps.sql<{ config: IntegrationConfig }[]>`
    select config from public.tenant_integrations where id = ${progress.rowId}`;
  const oldNow = await m.oldClient.connectionState(m.name).catch(() => null);
  return {
    ...options.base,
    ok: false,
    result: !rollback.length ? "failed" : complete ? "rolled_back" : "rollback_incomplete",
    failedStep,
    error: message,
    after: { config: now?.config ?? null, oldInstanceState: oldNow, newInstanceState: null },
    steps: m.op.steps,
    rollback,
  };
}

/**
 * The lease was lost before a step (another operation holds the tenant now): the migration stops there, and does
 * not roll back either, as undoing could undo what the new holder does. The answer says what was done and is left.
 */
async function stoppedOnLostLease(
  m: Migration,
  progress: Progress,
  options: { base: ResponseBase; error: StepFailed },
): Promise<MigrateResponse> {
  const done = [
    ...(progress.created ? [`'${m.name}' was created on ${m.to}`] : []),
    ...(progress.configSaved ? [`the config points at ${m.to} (its key in Vault)`] : []),
    ...(progress.retireAttempted ? [`retiring '${m.name}' on ${m.oldClient.baseUrl} was attempted`] : []),
  ];
  await m.op.record("rollback", "skipped", {
    error: `not rolled back: ${describeError(options.error.cause)}`,
    after: { done },
  });
  const [now] = await m.deps.sql<{ config: IntegrationConfig }[]>`
    select config from public.tenant_integrations where id = ${progress.rowId}`;
  const error = `Stopped before step '${options.error.step}': ${describeError(options.error.cause)}. ${
    done.length
      ? `Not rolled back, as another operation may hold the tenant now: ${done.join("; ")}. Check the tenant ` +
        `(diagnose) and finish or undo the migration by hand`
      : "Nothing had been changed"
  }`;
  return {
    ...options.base,
    ok: false,
    result: done.length ? "needs_human" : "failed",
    failedStep: options.error.step,
    error,
    after: { config: now?.config ?? null, oldInstanceState: null, newInstanceState: null },
    steps: m.op.steps,
    rollback: [],
  };
}

/**
 * The rollback: restore the config row and drop the stored key (when the config was saved), delete the instance
 * created on the new server, and reconnect the old instance if retiring it was attempted and it is no longer open.
 * Every step is recorded; `complete` is false when one failed.
 */
async function rollBack(m: Migration, progress: Progress): Promise<{ steps: StepReport[]; complete: boolean }> {
  const { deps: { sql }, op } = m;
  const out: StepReport[] = [];
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
  const savedSecret = progress.configSaved ? progress.savedSecret : null;
  if (progress.configSaved) {
    await step("restore_config", async () => {
      const link = progress.link;
      await sql.begin(async (tx) => {
        await tx`update public.tenant_integrations set config = ${tx.json(progress.backup as never)}, updated_at = now()
          where id = ${progress.rowId}`;
        if (link) {
          await tx`select maintenance.undo_tenant_server(${m.tenantId}, ${link.previousServerId}::bigint,
            ${link.createdServerId}::bigint)`;
        }
      });
      return { config: progress.backup, link: link ? "restored" : null };
    });
  }
  if (savedSecret) {
    await step("drop_new_key", async () => {
      await sql`select maintenance.drop_evolution_key(${savedSecret}::uuid)`;
      return { dropped: true };
    });
  }
  if (progress.created) {
    await step("delete_new_instance", async () => {
      // the name is left free behind the rollback, so that a retry of the migration can create it again
      const r = await deleteInstance(m.newClient, m.name, { recreate: true });
      return { ...r, ...(await awaitNameFree(m.newClient, m.name)), server: m.newClient.baseUrl };
    });
  }
  if (progress.oldState && progress.retireAttempted) {
    await step("old_instance", async () => {
      const now = await m.oldClient.connectionState(m.name);
      if (now === "open" || now === progress.oldState) return { state: now, reconnected: false };
      const r = await m.oldClient.connect(m.name);
      return { state: now, reconnected: true, ...connectSummary(r) };
    });
  }
  return { steps: out, complete };
}
