/**
 * @module
 * One changing operation on one tenant (fix, reconnect, reset, migrate): its id, its steps, and an audit row per
 * step in `maintenance.actions_audit` (`<action>.<step>`), planned, done, failed, skipped or rolled back alike.
 */
import type { Sql } from "../db.ts";
import { type ActionResult, recordAction } from "../audit.ts";
import { describeError } from "../evolution/errors.ts";

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

  constructor(sql: Sql, options: { action: string; actor: string; tenant: string; dryRun: boolean; id?: string }) {
    this.#sql = sql;
    this.action = options.action;
    this.actor = options.actor;
    this.tenant = options.tenant;
    this.dryRun = options.dryRun;
    if (options.id) this.id = options.id;
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

  /** Runs a step and records it `ok` (with `after(value)`) or `failed`; a failure is rethrown as {@link StepFailed}. */
  async run<T>(
    step: string,
    fn: () => Promise<T>,
    options: { before?: unknown; after?: (value: T) => unknown } = {},
  ): Promise<T> {
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
