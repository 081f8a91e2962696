/**
 * @module
 * One changing operation on one tenant (fix, reconnect, reset, migrate): its id, its steps, and an audit row per
 * step in `maintenance.actions_audit` (`<action>.<step>`), planned, done, failed, skipped or rolled back alike.
 *
 * An operation runs under its tenant's lease ({@link Operation.hold}); before each step it confirms the lease is
 * still its own (renewing it), and when it is not (taken over after running out, or not renewable) the step is not
 * started: it is recorded `skipped` with the reason and the operation stops there ({@link StepFailed} whose cause is
 * a {@link LeaseLost}), so nothing is done beside the operation that holds the tenant now.
 */
import type { Sql } from "../db.ts";
import { type ActionResult, recordAction } from "../audit.ts";
import { describeError } from "../evolution/errors.ts";
import { type HeldLease, isLeaseLost, LeaseLost } from "../tenant_lease.ts";

export { isLeaseLost, LeaseLost };

/** One step as reported. */
export interface StepReport {
  step: string;
  result: ActionResult;
  detail?: unknown;
  error?: string;
}

/** How an operation ended, as the routes report it. */
export type OperationResult =
  | "ok"
  | "planned"
  | "nothing_to_do"
  | "needs_human"
  | "budget_exhausted"
  | "failed"
  | "rolled_back"
  | "rollback_incomplete";

/** A step failed: which one, and why (the cause is kept). */
export class StepFailed extends Error {
  override name = "StepFailed";
  readonly step: string;
  constructor(step: string, cause: unknown) {
    super(`step '${step}' failed: ${describeError(cause)}`, { cause });
    this.step = step;
  }
}

/** The steps of one operation, each audited as it happens. */
export class Operation {
  readonly id: string = crypto.randomUUID();
  readonly steps: StepReport[] = [];
  readonly #sql: Sql;
  readonly action: string;
  readonly actor: string;
  readonly tenant: string;
  readonly dryRun: boolean;
  #lease: HeldLease | null = null;

  constructor(sql: Sql, options: { action: string; actor: string; tenant: string; dryRun: boolean; id?: string }) {
    this.#sql = sql;
    this.action = options.action;
    this.actor = options.actor;
    this.tenant = options.tenant;
    this.dryRun = options.dryRun;
    if (options.id) this.id = options.id;
  }

  /** The tenant lease this operation runs under: each {@link run} step first confirms it. */
  hold(lease: HeldLease): this {
    this.#lease = lease;
    return this;
  }

  /** Why the lease was lost, once it is (null while held, or without a lease). */
  get leaseLost(): LeaseLost | null {
    return this.#lease?.lost ?? null;
  }

  /** Records a step without running anything (planned, skipped, refused, or a rollback outcome). */
  async record(
    step: string,
    result: ActionResult,
    options: { before?: unknown; after?: unknown; detail?: unknown; error?: string } = {},
  ): Promise<void> {
    this.steps.push({ step, result, detail: options.detail ?? options.after, error: options.error });
    await recordAction(this.#sql, {
      actor: this.actor,
      action: `${this.action}.${step}`,
      tenantSlug: this.tenant,
      operationId: this.id,
      dryRun: this.dryRun,
      before: options.before,
      after: options.after ?? options.detail,
      result,
      error: options.error,
    });
  }

  /**
   * Runs a step and records it `ok` (with `after(value)`) or `failed`; a failure is rethrown as {@link StepFailed}.
   * A step whose lease is lost is not started: recorded `skipped`, and a {@link StepFailed} with the
   * {@link LeaseLost} as its cause.
   */
  async run<T>(
    step: string,
    fn: () => Promise<T>,
    options: { before?: unknown; after?: (value: T) => unknown } = {},
  ): Promise<T> {
    if (this.#lease) {
      try {
        await this.#lease.confirm();
      } catch (error) {
        const lost = isLeaseLost(error) ? error : new LeaseLost(describeError(error), { cause: error });
        const message = `not started: ${lost.message}; the operation stops here`;
        await this.record(step, "skipped", { before: options.before, error: message }).catch(() => {});
        throw new StepFailed(step, new LeaseLost(message, { holder: lost.holder, cause: lost }));
      }
    }
    let value: T;
    try {
      value = await fn();
    } catch (error) {
      await this.record(step, "failed", { before: options.before, error: describeError(error) }).catch(() => {});
      throw new StepFailed(step, error);
    }
    await this.record(step, "ok", { before: options.before, after: options.after?.(value) ?? null });
    return value;
  }
}
