/**
 * @module
 * The audit trail of changing actions (`maintenance.actions_audit`): every fix, reconnect, reset, migrate,
 * isolation fix and orphan deletion is recorded here, with who, when, the tenant, before/after and how it ended —
 * failed and rolled-back ones included, and dry runs as `planned`. Key-like fields are redacted before the insert,
 * so a secret can never reach the table.
 */
import { z } from "zod";
import type { Sql } from "./db.ts";

/** How an audited action ended (the table's check constraint). */
export const ActionResult = z.enum(["ok", "planned", "failed", "rolled_back", "skipped", "refused"]);
export type ActionResult = z.infer<typeof ActionResult>;

/** One audit row to write. */
export interface ActionRecord {
  /** Who: `cli:<user>`, `api`, `job:isolation-audit`, … */
  actor: string;
  /** What: a dotted lowercase name, e.g. `reset.delete_instance`, `orphan.delete_instance`. */
  action: string;
  tenantSlug?: string | null;
  /** Groups the steps of one operation. */
  operationId?: string | null;
  dryRun?: boolean;
  before?: unknown;
  after?: unknown;
  result: ActionResult;
  /** Required for failed, rolled_back and refused. */
  error?: string | null;
}

const SECRET_KEY = /(^|_|-)(api_?key|apikey|key|token|secret|password|authorization|hash)$/i;

/** The placeholder written where a secret was. */
export const REDACTED = "[redacted]";

/**
 * A deep copy of `value` with every key-like field (`apiKey`, `api_key`, `token`, `secret`, `password`,
 * `authorization`, `hash`, `x-webhook-token`, …) replaced by {@link REDACTED}. Plain data only (JSON-able).
 */
export function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value instanceof Date) return value.toISOString();
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const sensitive = SECRET_KEY.test(k.replace(/([a-z])([A-Z])/g, "$1_$2")) && !/secret_?id$/i.test(k);
      out[k] = sensitive && v !== null && v !== undefined ? REDACTED : redact(v);
    }
    return out;
  }
  return value;
}

/** Writes one audit row (secrets redacted) and returns its id. */
export async function recordAction(sql: Sql, record: ActionRecord): Promise<number> {
  const result = ActionResult.parse(record.result);
  const error = record.error ?? (["failed", "rolled_back", "refused"].includes(result) ? "(no message)" : null);
  const json = (v: unknown) => (v === undefined || v === null ? null : sql.json(redact(v) as never));
  const [row] = await sql<{ id: string }[]>`
    insert into maintenance.actions_audit (actor, action, tenant_slug, operation_id, dry_run, before, after, result,
      error)
    values (${record.actor.slice(0, 200) || "unknown"}, ${record.action}, ${record.tenantSlug ?? null},
      ${record.operationId ?? null}, ${record.dryRun ?? false}, ${json(record.before)}, ${json(record.after)},
      ${result}, ${error})
    returning id`;
  return Number(row.id);
}

/** A stored audit row, as read back by reports and tests. */
export interface ActionRow {
  id: number;
  createdAt: Date;
  actor: string;
  action: string;
  tenantSlug: string | null;
  operationId: string | null;
  dryRun: boolean;
  before: unknown;
  after: unknown;
  result: ActionResult;
  error: string | null;
}

/** The audit rows of one tenant (newest first), or of one operation when `operationId` is given. */
export async function listActions(
  sql: Sql,
  options: { tenantSlug?: string; operationId?: string; limit?: number } = {},
): Promise<ActionRow[]> {
  const limit = Math.min(Math.max(options.limit ?? 100, 1), 1000);
  const rows = await sql<
    {
      id: string;
      created_at: Date;
      actor: string;
      action: string;
      tenant_slug: string | null;
      operation_id: string | null;
      dry_run: boolean;
      before: unknown;
      after: unknown;
      result: ActionResult;
      error: string | null;
    }[]
  >`
    select id, created_at, actor, action, tenant_slug, operation_id, dry_run, before, after, result, error
    from maintenance.actions_audit
    where (${options.tenantSlug ?? null}::text is null or tenant_slug = ${options.tenantSlug ?? null})
      and (${options.operationId ?? null}::uuid is null or operation_id = ${options.operationId ?? null})
    order by id desc
    limit ${limit}`;
  return rows.map((r) => ({
    id: Number(r.id),
    createdAt: new Date(r.created_at),
    actor: r.actor,
    action: r.action,
    tenantSlug: r.tenant_slug,
    operationId: r.operation_id,
    dryRun: r.dry_run,
    before: r.before,
    after: r.after,
    result: r.result,
    error: r.error,
  }));
}
