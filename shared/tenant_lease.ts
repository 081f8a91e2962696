/**
 * @module
 * The per-tenant lease (`maintenance.acquire_tenant_lease`): one changing operation on a tenant at a time, for the
 * on-demand actions (fix, reconnect, reset, migrate) and the jobs that change tenants (isolation fixes) alike.
 * {@link tryTenantLease} says who holds a lease it cannot take; {@link withTenantLease} turns that into a 409. The
 * lease is released when the work ends, even when it throws.
 *
 * While the work runs, the lease is renewed (`maintenance.renew_tenant_lease`) every {@link RENEW_FRACTION} of its
 * length, so an operation slower than its lease (a migrate on a slow server) keeps it, and a crashed holder frees
 * the tenant one lease length after its last renewal. A renewal that finds the lease taken over marks it lost: the
 * work sees that through {@link HeldLease.confirm}, which an operation calls before each step
 * (`shared/ops/operation.ts`), so it stops before its next step and says so. The heartbeat stops when the work ends.
 */
import type { Sql } from "./db.ts";
import { ConflictError, errorMessage } from "./errors.ts";

/** What to lease: the tenant (or another key, e.g. `instance:<name>`), for which operation, by whom, how long. */
export interface TenantLease {
  /** The lease key: the tenant's slug. */
  slug: string;
  action: string;
  actor: string;
  operationId: string;
  /** How long the lease lasts without a renewal (default: setting `tenant_lease_seconds`, 300 s). */
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
 * The heartbeat renews a lease this often, as a fraction of its length: a renewal can fail twice in a row (a
 * database blip) before the lease could run out under a live holder.
 */
export const RENEW_FRACTION = 1 / 3;

/** The lease of a running operation was taken over by another one, or could not be renewed before it ran out. */
export class LeaseLost extends Error {
  override name = "LeaseLost";
  readonly code = "lease_lost";
  /** Who holds the lease now (null: nobody, or unknown). */
  readonly holder: { operationId: string; action: string; actor: string } | null;
  constructor(message: string, options: { holder?: LeaseLost["holder"]; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.holder = options.holder ?? null;
  }
}

/** True when `error` is a {@link LeaseLost}. */
export function isLeaseLost(error: unknown): error is LeaseLost {
  return error instanceof LeaseLost;
}

/** The lease as the work holding it sees it. */
export interface HeldLease {
  /** How long the lease lasts past each renewal. */
  readonly seconds: number;
  /** Why the lease is lost, once a renewal found it so; null while it is held. */
  readonly lost: LeaseLost | null;
  /**
   * Before a step: renews the lease now and resolves while this operation still holds it; throws {@link LeaseLost}
   * once it does not (taken over, or not renewed in time: a database that does not answer cannot confirm it).
   */
  confirm(): Promise<void>;
}

/**
 * Runs `fn` holding the tenant's lease, renewed while it runs, or, when another live operation holds it, does not
 * run it and answers who does (never throws for a held lease). The lease is released even when `fn` throws.
 */
export async function tryTenantLease<T>(
  sql: Sql,
  lease: TenantLease,
  fn: (held: HeldLease) => Promise<T>,
): Promise<LeaseAttempt<T>> {
  const askedAt = performance.now();
  const [got] = await sql<
    {
      acquired: boolean;
      holder_operation_id: string;
      holder_action: string;
      holder_actor: string;
      holder_since: Date;
      holder_expires_at: Date;
      seconds: number;
    }[]
  >`select l.*, s.seconds
    from (select coalesce(${lease.seconds ?? null}::integer,
      (maintenance.setting('tenant_lease_seconds') #>> '{}')::integer, 300) as seconds) s
    cross join lateral maintenance.acquire_tenant_lease(${lease.slug}, ${lease.operationId}, ${lease.action},
      ${lease.actor}, s.seconds) l`;
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
  const heartbeat = startHeartbeat(sql, lease, { seconds: got.seconds, heldSince: askedAt });
  try {
    return { acquired: true, value: await fn(heartbeat.held) };
  } finally {
    await heartbeat.stop();
    await sql`select maintenance.release_tenant_lease(${lease.slug}, ${lease.operationId})`.catch(() => {});
  }
}

/**
 * Runs `fn` holding the tenant's lease: a second changing action on the same tenant gets a {@link ConflictError}
 * (409, `operation_in_progress`) naming the running one. The lease is released even when `fn` throws.
 */
export async function withTenantLease<T>(
  sql: Sql,
  lease: TenantLease,
  fn: (held: HeldLease) => Promise<T>,
): Promise<T> {
  const attempt = await tryTenantLease(sql, lease, fn);
  if (attempt.acquired) return attempt.value;
  const { holder } = attempt;
  throw new ConflictError(
    `Cannot ${lease.action} tenant '${lease.slug}' as another operation (${holder.action}) is running on it`,
    { code: "operation_in_progress", details: holder },
  );
}

/**
 * Renews the lease every {@link RENEW_FRACTION} of its length until stopped (one renewal at a time). `heldSince`:
 * when the acquiring statement was sent (performance.now()), the start of the first confirmed window: the lease is
 * known to be held until `seconds` after the last renewal that was sent and succeeded.
 */
function startHeartbeat(
  sql: Sql,
  lease: TenantLease,
  options: { seconds: number; heldSince: number },
): { held: HeldLease; stop(): Promise<void> } {
  const { seconds } = options;
  let confirmedUntil = options.heldSince + seconds * 1000;
  let lost: LeaseLost | null = null;
  let lastError: unknown = null;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: Promise<void> | null = null;

  const renewOnce = async () => {
    const sentAt = performance.now();
    try {
      const [r] = await sql<
        {
          renewed: boolean;
          holder_operation_id: string | null;
          holder_action: string | null;
          holder_actor: string | null;
        }[]
      >`select * from maintenance.renew_tenant_lease(${lease.slug}, ${lease.operationId}, ${seconds})`;
      if (r?.renewed) {
        confirmedUntil = Math.max(confirmedUntil, sentAt + seconds * 1000);
        lastError = null;
      } else {
        const holder = r?.holder_operation_id
          ? { operationId: r.holder_operation_id, action: r.holder_action ?? "?", actor: r.holder_actor ?? "?" }
          : null;
        lost ??= new LeaseLost(
          `the lease on '${lease.slug}' was lost: ${
            holder
              ? `another operation (${holder.action} by ${holder.actor}) holds it now`
              : "it ran out and was released by another holder"
          }`,
          { holder },
        );
      }
    } catch (error) {
      lastError = error; // the lease may still hold: it is known lost only once it could have run out
    }
    if (!lost && performance.now() > confirmedUntil) {
      lost = new LeaseLost(
        `the lease on '${lease.slug}' could not be renewed before it ran out (${seconds} s)${
          lastError ? `: ${errorMessage(lastError)}` : ""
        }`,
        { cause: lastError ?? undefined },
      );
    }
  };
  /** One renewal at a time: a caller arriving during one waits for it, then runs its own. */
  const renew = async () => {
    while (inFlight) await inFlight;
    inFlight = renewOnce().finally(() => (inFlight = null));
    await inFlight;
  };
  const schedule = () => {
    if (stopped || lost) return;
    timer = setTimeout(async () => {
      await renew();
      schedule();
    }, Math.max(1, seconds * 1000 * RENEW_FRACTION));
  };
  schedule();

  const held: HeldLease = {
    seconds,
    get lost() {
      return lost;
    },
    async confirm() {
      if (!lost) await renew();
      if (lost) throw lost;
    },
  };
  return {
    held,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      while (inFlight) await inFlight;
    },
  };
}
