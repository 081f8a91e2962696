/**
 * @module
 * The Evolution API's error and the helpers every caller of the client shares (jobs and on-demand actions alike):
 * {@link EvolutionError}, with its stable `code`, HTTP `status` and the server's `messages`;
 * {@link isEvolutionError}, a guard on one or more codes; {@link describeError}, a short secret-free description for
 * reports and the audit trail.
 */
import { errorMessage } from "../errors.ts";
import type { EvolutionErrorCode, EvolutionOperation } from "./types.ts";

/** A failed Evolution call: stable `code`, HTTP `status` (null without an answer), the server's `messages`. */
export class EvolutionError extends Error {
  override name = "EvolutionError";
  readonly code: EvolutionErrorCode;
  readonly status: number | null;
  readonly operation: EvolutionOperation;
  readonly instance: string | null;
  readonly messages: string[];
  constructor(
    code: EvolutionErrorCode,
    message: string,
    options: {
      status?: number | null;
      operation: EvolutionOperation;
      instance?: string | null;
      messages?: string[];
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = options.status ?? null;
    this.operation = options.operation;
    this.instance = options.instance ?? null;
    this.messages = options.messages ?? [];
  }
}

/** True when `error` is an Evolution error with one of `codes` (any code when none is given). */
export function isEvolutionError(error: unknown, ...codes: EvolutionErrorCode[]): error is EvolutionError {
  return error instanceof EvolutionError && (codes.length === 0 || codes.includes(error.code));
}

/** A short, secret-free description of an error for reports and the audit. */
export function describeError(error: unknown): string {
  if (error instanceof EvolutionError) {
    const msgs = error.messages.length ? ` (${error.messages.slice(0, 2).join("; ")})` : "";
    return `${error.code}${error.status ? ` ${error.status}` : ""}: ${error.message}${msgs}`;
  }
  return errorMessage(error);
}
