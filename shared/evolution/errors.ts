/**
 * @module
 * The Evolution API's error and the helpers every caller of the client shares (jobs and on-demand actions alike):
 * {@link EvolutionError}, with its stable `code`, HTTP `status` and the server's `messages`;
 * {@link isEvolutionError}, a guard on one or more codes; {@link describeError}, a short secret-free description for
 * reports and the audit trail.
 */
import { errorMessage } from "../errors.ts";
import type { EvolutionErrorCode, EvolutionOperation } from "./types.ts";

/** Baileys' message for a dead socket, as Evolution passes it on (a string, or an element of the array). */
const CONNECTION_CLOSED = /connection closed/i;

/** The client's calls that go over the instance's WhatsApp socket. */
const SOCKET_OPERATIONS: ReadonlySet<EvolutionOperation> = new Set(["logout", "delete_instance", "probe_socket"]);

/**
 * The error code of an Evolution answer that is not a success, from its status, its body and its messages:
 * - 503 `{code: "LICENSE_REQUIRED"}` (2.4 not activated) → `license_required`;
 * - "Connection Closed" in the messages of a call over the socket (logout 500, the probe) → `socket_closed`, and a
 *   delete answered 400 `["[object Object]"]` (2.3.7: the logout it starts failed on a dead socket; nothing deleted);
 * - v1.8's 500 `{error:true, message:["Instance … not found"]}` of fetchInstances → `not_found`;
 * - 401 → `unauthorized`, 404 → `not_found`, 403 on create → `name_in_use`, other 5xx → `server_error`, other 4xx →
 *   `bad_request`.
 */
export function classifyAnswer(
  op: EvolutionOperation,
  status: number,
  body: unknown,
  messages: string[],
): EvolutionErrorCode {
  const b = (body && typeof body === "object" ? body : {}) as { code?: unknown; error?: unknown };
  if (status === 503 && b.code === "LICENSE_REQUIRED") return "license_required";
  // only the calls that use the WhatsApp socket can find it dead (state reads come from memory and the database)
  if (SOCKET_OPERATIONS.has(op) && messages.some((m) => CONNECTION_CLOSED.test(m))) return "socket_closed";
  if (op === "delete_instance" && status === 400 && messages.length === 1 && messages[0] === "[object Object]") {
    return "socket_closed";
  }
  if (status >= 500 && b.error === true && messages.some((m) => /\bnot found\b/i.test(m))) return "not_found";
  if (status === 401) return "unauthorized";
  if (status === 404) return "not_found";
  if (status === 403 && op === "create_instance") return "name_in_use";
  if (status >= 500) return "server_error";
  return "bad_request";
}

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
