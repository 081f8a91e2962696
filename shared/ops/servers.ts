/**
 * @module
 * The fleet's servers through `whatsapp-ops`: list, register, enable, disable, drain, undrain and remove an Evolution
 * server of the registry (`maintenance.evolution_servers`, read through `../evolution/servers.ts`).
 *
 * - `register {name, url, key, capacity?}` asks the server first (`GET /` through the Evolution client, and a
 *   listing of a name nobody uses to check the key), then stores the key in Vault and the row with the version it
 *   saw, in one transaction. The key is never returned, logged or audited.
 * - `disable` (no placements, no migrations to it; the fleet-aware jobs will skip it) is a plan unless `apply`;
 *   `enable`, `drain` (no new automatic placements; its tenants stay) and `undrain` act at once: they destroy
 *   nothing. A server the bundle registered by itself (migrate to an unregistered URL, the conversion of a migrated
 *   config row) starts draining: `undrain` opts it into placements.
 * - `remove` needs `confirm` equal to the name (checked first, like reset) and `apply`; it is refused with a 409
 *   naming the count while any tenant is on the server, and always for the default server.
 *
 * Each request that changes or tries to change something writes one `maintenance.actions_audit` row
 * (`servers.<verb>`, no tenant), refusals included; a dry run is recorded `planned`.
 */
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { recordAction } from "../audit.ts";
import { normalizeBaseUrl } from "../config.ts";
import { sqlState } from "../db.ts";
import { type AppError, ConflictError, NotFoundError, ValidationError } from "../errors.ts";
import { describeError, isEvolutionError } from "../evolution/errors.ts";
import {
  DEFAULT_SERVER,
  ensureDefaultServer,
  findServer,
  listServers,
  placementFor,
  type ServerLoadRow,
  ServerName,
  ServerUrl,
  type ServerView,
  serverView,
} from "../evolution/servers.ts";
import type { OperationResult } from "./operation.ts";

/** `POST /servers/list` */
export const ServerListBody = z.object({}).strict();
/** `POST /servers/register` */
export const ServerRegisterBody = z.object({
  name: ServerName.refine((n) => n !== DEFAULT_SERVER, {
    message: "'default' is the EVOLUTION_API_URL server, registered by the functions themselves",
  }),
  url: ServerUrl,
  key: z.string().min(1, "must not be empty").max(512, "must be at most 512 characters"),
  capacity: z.number().int().min(1).max(1_000_000).optional(),
}).strict();
/** `POST /servers/{enable,drain,undrain}` */
export const ServerNameBody = z.object({ name: ServerName }).strict();
/** `POST /servers/disable` */
export const ServerDisableBody = z.object({ name: ServerName, apply: z.boolean().default(false) }).strict();
/** `POST /servers/remove` */
export const ServerRemoveBody = z.object({
  name: ServerName,
  confirm: z.string().max(200).optional(),
  apply: z.boolean().default(false),
}).strict();

/** What `/servers/list` answers. */
export interface ServerListResponse {
  action: "servers.list";
  ok: true;
  servers: ServerView[];
  /** The server a tenant with no server would be placed on now (null: none takes new tenants). */
  nextPlacement: string | null;
}

/** What every changing server action answers. */
export interface ServerActionResponse {
  action: `servers.${ServerVerb}`;
  server: string;
  operationId: string;
  dryRun: boolean;
  ok: boolean;
  result: OperationResult;
  before: ServerView | null;
  after: ServerView | null;
  plan: string[];
}

/** The changing server actions. */
export type ServerVerb = "register" | "enable" | "disable" | "drain" | "undrain" | "remove";

/** The servers with their tenant counts, and where the next placement would go. */
export async function serverList(deps: Deps): Promise<ServerListResponse> {
  await ensureDefaultServer(deps);
  const servers = await listServers(deps.sql);
  const next = await placementFor(deps.sql);
  return { action: "servers.list", ok: true, servers, nextPlacement: next?.name ?? null };
}

/** One audited server action: its id, and how it records an outcome. */
class ServerAction {
  readonly id = crypto.randomUUID();
  constructor(
    readonly deps: Deps,
    readonly verb: ServerVerb,
    readonly options: { actor: string; name: string; dryRun: boolean },
  ) {}

  async record(
    result: "ok" | "planned" | "skipped" | "refused" | "failed",
    detail: { before?: unknown; after?: unknown; error?: string } = {},
  ): Promise<void> {
    await recordAction(this.deps.sql, {
      actor: this.options.actor,
      action: `servers.${this.verb}`,
      operationId: this.id,
      dryRun: this.options.dryRun,
      before: detail.before,
      after: detail.after,
      result,
      error: detail.error,
    });
  }

  /** Records the refusal and throws it. */
  async refuse(error: AppError, detail: { before?: unknown; after?: unknown } = {}): Promise<never> {
    await this.record("refused", { ...detail, error: error.message });
    throw error;
  }

  answer(result: OperationResult, rest: Pick<ServerActionResponse, "before" | "after" | "plan">): ServerActionResponse {
    return {
      action: `servers.${this.verb}`,
      server: this.options.name,
      operationId: this.id,
      dryRun: this.options.dryRun,
      ok: result === "ok" || result === "planned" || result === "nothing_to_do",
      result,
      ...rest,
    };
  }
}

/** A name used nowhere: listing it checks that the server accepts the key (a 404 is the good answer). */
const KEY_PROBE_NAME = "canais-register-probe-0";

/** `register`: checks the server answers and accepts the key, then stores it (see the module doc). */
export async function registerServer(
  deps: Deps,
  body: z.infer<typeof ServerRegisterBody>,
  options: { actor: string },
): Promise<ServerActionResponse> {
  const { sql } = deps;
  const url = normalizeBaseUrl(body.url);
  const act = new ServerAction(deps, "register", { actor: options.actor, name: body.name, dryRun: false });
  const asked = { name: body.name, url, capacity: body.capacity ?? null };
  await ensureDefaultServer(deps);
  if (url === deps.config.evolution.url) {
    await act.refuse(
      new ConflictError(`Cannot register ${url} as it is the default server (EVOLUTION_API_URL)`, {
        code: "server_url_taken",
        details: [{ field: "url", message: `already registered as '${DEFAULT_SERVER}'` }],
      }),
      { after: asked },
    );
  }
  const taken = await sql<{ name: string; base_url: string }[]>`
    select name, base_url from maintenance.evolution_servers where name = ${body.name} or base_url = ${url}`;
  const byName = taken.find((t) => t.name === body.name);
  const byUrl = taken.find((t) => t.base_url === url);
  if (byName || byUrl) {
    await act.refuse(
      byName
        ? new ConflictError(`Cannot register server '${body.name}' as that name is taken (${byName.base_url})`, {
          code: "server_name_taken",
          details: [{ field: "name", message: "already registered" }],
        })
        : new ConflictError(`Cannot register ${url} as it is already registered as '${byUrl!.name}'`, {
          code: "server_url_taken",
          details: [{ field: "url", message: `already registered as '${byUrl!.name}'` }],
        }),
      { after: asked },
    );
  }

  const client = deps.evolution.withCredentials(url, body.key);
  let version: string;
  try {
    version = (await client.serverInfo()).version;
  } catch (error) {
    const message = describeError(error);
    return await act.refuse(
      new ValidationError(`Cannot register server '${body.name}' as ${url} does not answer GET /: ${message}`, {
        code: "server_unreachable",
        details: [{ field: "url", message: `GET / failed: ${message}` }],
      }),
      { after: asked },
    );
  }
  try {
    await client.fetchInstances({ instanceName: KEY_PROBE_NAME, absentOk: true });
  } catch (error) {
    if (!isEvolutionError(error, "not_found")) {
      const refused = isEvolutionError(error, "unauthorized");
      const message = describeError(error);
      await act.refuse(
        new ValidationError(
          refused
            ? `Cannot register server '${body.name}' as ${url} refuses the key`
            : `Cannot register server '${body.name}' as ${url} fails a listing: ${message}`,
          {
            code: refused ? "key_refused" : "server_error",
            details: [refused ? { field: "key", message: "refused by the server (401)" } : { field: "url", message }],
          },
        ),
        { after: { ...asked, version } },
      );
    }
  }

  let rows: ServerLoadRow[];
  try {
    rows = await sql<ServerLoadRow[]>`
      select * from maintenance.register_evolution_server(${body.name}, ${url}, ${body.key}, ${body.capacity ?? null},
        ${version})`;
  } catch (error) {
    if (sqlState(error) !== "23505") throw error;
    const onName = String((error as { constraint_name?: string }).constraint_name ?? "").includes("name");
    return await act.refuse(
      new ConflictError(`Cannot register server '${body.name}' as its ${onName ? "name" : "URL"} was just taken`, {
        code: onName ? "server_name_taken" : "server_url_taken",
        details: [{ field: onName ? "name" : "url", message: "already registered" }],
      }),
      { after: asked },
    );
  }
  const after = serverView(rows[0]);
  await act.record("ok", { after });
  return act.answer("ok", { before: null, after, plan: [] });
}

/** What each state change sets. */
const CHANGES: Record<"enable" | "disable" | "drain" | "undrain", { enabled?: boolean; draining?: boolean }> = {
  enable: { enabled: true },
  disable: { enabled: false },
  drain: { draining: true },
  undrain: { draining: false },
};

/** Reads a server or answers 404 (recorded: someone asked for a server that does not exist). */
async function serverOr404(act: ServerAction, name: string): Promise<ServerView> {
  await ensureDefaultServer(act.deps);
  const server = await findServer(act.deps.sql, name);
  if (!server) {
    return await act.refuse(
      new NotFoundError(`Evolution server '${name}' is not registered`, { details: { server: name } }),
    );
  }
  return server;
}

/** `enable`, `disable` (a plan unless `apply`), `drain`, `undrain`. */
export async function changeServer(
  deps: Deps,
  verb: "enable" | "disable" | "drain" | "undrain",
  options: { actor: string; name: string; apply?: boolean },
): Promise<ServerActionResponse> {
  const dryRun = verb === "disable" && options.apply !== true;
  const act = new ServerAction(deps, verb, { actor: options.actor, name: options.name, dryRun });
  const before = await serverOr404(act, options.name);
  const change = CHANGES[verb];
  const unchanged = (change.enabled === undefined || change.enabled === before.enabled) &&
    (change.draining === undefined || change.draining === before.draining);
  const plan = unchanged ? [] : [planLine(verb, before)];
  if (unchanged) {
    await act.record("skipped", { before, after: before });
    return act.answer("nothing_to_do", { before, after: before, plan });
  }
  if (dryRun) {
    await act.record("planned", { before, after: { plan } });
    return act.answer("planned", { before, after: null, plan });
  }
  await deps.sql`
    update maintenance.evolution_servers
    set enabled = coalesce(${change.enabled ?? null}::boolean, enabled),
      draining = coalesce(${change.draining ?? null}::boolean, draining)
    where name = ${options.name}`;
  const after = (await findServer(deps.sql, options.name))!;
  await act.record("ok", { before, after });
  return act.answer("ok", { before, after, plan });
}

function planLine(verb: ServerVerb, s: ServerView): string {
  const tenants = `${s.tenants} tenant${s.tenants === 1 ? "" : "s"}`;
  switch (verb) {
    case "disable":
      return `disable '${s.name}' (${s.url}, ${tenants}): no placement or migration to it; its tenants stay on it`;
    case "enable":
      return `enable '${s.name}' (${s.url}): it takes new tenants again unless draining`;
    case "drain":
      return `drain '${s.name}' (${s.url}, ${tenants}): no new placements; migrate its tenants away to retire it`;
    case "undrain":
      return `undrain '${s.name}' (${s.url}): it takes new tenants again`;
    default:
      return `${verb} '${s.name}'`;
  }
}

/** `remove`: confirm first, refused while tenants use it, a plan unless `apply` (see the module doc). */
export async function removeServer(
  deps: Deps,
  body: z.infer<typeof ServerRemoveBody>,
  options: { actor: string },
): Promise<ServerActionResponse> {
  const act = new ServerAction(deps, "remove", { actor: options.actor, name: body.name, dryRun: !body.apply });
  if (body.confirm !== body.name) {
    const shown = body.confirm === undefined ? "missing" : `'${body.confirm.slice(0, 80)}'`;
    await act.refuse(
      new ValidationError(`Cannot remove server as 'confirm' must equal its name: current value is ${shown}`, {
        code: "confirm_mismatch",
        details: [{ field: "confirm", message: `must equal '${body.name}'` }],
      }),
    );
  }
  const before = await serverOr404(act, body.name);
  if (before.isDefault) {
    await act.refuse(
      new ValidationError(`Cannot remove the default server: it is EVOLUTION_API_URL's, registered on every start`, {
        code: "default_server",
        details: [{ field: "name", message: "the default server cannot be removed" }],
      }),
      { before },
    );
  }
  const inUse = (tenants: number) =>
    new ConflictError(
      `Cannot remove server '${body.name}' as ${tenants} tenant${tenants === 1 ? " uses" : "s use"} it: ` +
        `drain it and migrate ${tenants === 1 ? "it" : "them"} away first`,
      { code: "server_in_use", details: { server: body.name, tenants } },
    );
  if (before.tenants > 0) await act.refuse(inUse(before.tenants), { before });
  const plan = [`remove '${before.name}' (${before.url}) from the registry and drop its key from Vault`];
  if (!body.apply) {
    await act.record("planned", { before, after: { plan } });
    return act.answer("planned", { before, after: null, plan });
  }
  try {
    await deps.sql`select maintenance.remove_evolution_server(${body.name})`;
  } catch (error) {
    // a tenant was placed on it since the count: the link's foreign key refuses the delete
    if (sqlState(error) !== "23503") throw error;
    const now = await findServer(deps.sql, body.name);
    await act.refuse(inUse(now?.tenants ?? 1), { before });
  }
  await act.record("ok", { before, after: null });
  return act.answer("ok", { before, after: null, plan });
}
