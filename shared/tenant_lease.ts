/**
 * @module
 * The per-tenant lease (`maintenance.acquire_tenant_lease`): one changing operation on a tenant at a time, for the
 * on-demand actions (fix, reconnect, reset, migrate) and the jobs that change tenants (isolation fixes) alike.
 * {@link tryTenantLease} says who holds a lease it cannot take; {@link withTenantLease} turns that into a 409. The
 * lease is released when the work ends, even when it throws.
 */
import type { Sql } from "./db.ts";
import { ConflictError } from "./errors.ts";

/** What to lease: the tenant (or another key, e.g. `instance:<name>`), for which operation, by whom, how long. */
export interface TenantLease {
  /** The lease key: the tenant's slug. */
  slug: string;
  action: string;
  actor: string;
  operationId: string;
  /** How long the lease lasts if it is never released (default 300 s). */
  seconds?: number;
}

/** The live operation that holds a lease. */
export interface LeaseHolder {
  operationId: string;
  action: string;
  actor: string;
  since: Date;
  expiresAt: Date;
}

/** What {@link tryTenantLease} did: ran the work (its value), or did not, as `holder` has the lease. */
export type LeaseAttempt<T> = { acquired: true; value: T } | { acquired: false; holder: LeaseHolder };

/**
 * Runs `fn` holding the tenant's lease, or, when another live operation holds it, does not run it and answers who
 * does (never throws for a held lease). The lease is released even when `fn` throws.
 */
export async function tryTenantLease<T>(sql: Sql, lease: TenantLease, fn: () => Promise<T>): Promise<LeaseAttempt<T>> {
  const [got] = await sql<
    {
      acquired: boolean;
      holder_operation_id: string;
      holder_action: string;
      holder_actor: string;
      holder_since: Date;
      holder_expires_at: Date;
    }[]
  >`select * from maintenance.acquire_tenant_lease(${lease.slug}, ${lease.operationId}, ${lease.action},
      ${lease.actor}, ${lease.seconds ?? 300})`;
  if (!got?.acquired) {
    return {
      acquired: false,
      holder: {
        operationId: got?.holder_operation_id,
        action: got?.holder_action,
        actor: got?.holder_actor,
        since: got?.holder_since,
        expiresAt: got?.holder_expires_at,
      },
    };
  }
  try {
    return { acquired: true, value: await fn() };
  } finally {
    await sql`select maintenance.release_tenant_lease(${lease.slug}, ${lease.operationId})`.catch(() => {});
  }
}

/**
 * Runs `fn` holding the tenant's lease: a second changing action on the same tenant gets a {@link ConflictError}
 * (409, `operation_in_progress`) naming the running one. The lease is released even when `fn` throws.
 */
export async function withTenantLease<T>(sql: Sql, lease: TenantLease, fn: () => Promise<T>): Promise<T> {
  const attempt = await tryTenantLease(sql, lease, fn);
  if (attempt.acquired) return attempt.value;
  const { holder } = attempt;
  throw new ConflictError(
    `Cannot ${lease.action} tenant '${lease.slug}' as another operation (${holder.action}) is running on it`,
    { code: "operation_in_progress", details: holder },
  );
}
