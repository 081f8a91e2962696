/**
 * @module
 * Typed errors shared by every function. Each has a stable `code` and an HTTP `status`; the one `onError` handler
 * in `http.ts` turns them into `{ error: { code, message, details } }` responses.
 */

/** Base class: an error with a stable code, an HTTP status, and optional structured details. */
export class AppError extends Error {
  override name = "AppError";
  readonly code: string;
  readonly status: number;
  readonly details: unknown;
  constructor(code: string, status: number, message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = status;
    this.details = options.details ?? null;
  }
}

/** 400: the request body or a parameter is invalid. */
export class ValidationError extends AppError {
  override name = "ValidationError";
  constructor(message: string, options: { cause?: unknown; details?: unknown; code?: string } = {}) {
    super(options.code ?? "invalid_request", 400, message, options);
  }
}

/** 401: missing or wrong credentials. */
export class UnauthorizedError extends AppError {
  override name = "UnauthorizedError";
  constructor(message = "Missing or invalid API key: send the secret key as 'apikey' or 'Authorization: Bearer'") {
    super("unauthorized", 401, message);
  }
}

/** 403: authenticated, but not allowed to act on this resource. */
export class ForbiddenError extends AppError {
  override name = "ForbiddenError";
  constructor(message: string, options: { details?: unknown } = {}) {
    super("forbidden", 403, message, options);
  }
}

/** 404: the named resource (tenant, route) does not exist. */
export class NotFoundError extends AppError {
  override name = "NotFoundError";
  constructor(message: string, options: { details?: unknown } = {}) {
    super("not_found", 404, message, options);
  }
}

/** 409: the resource is in a state that forbids the action (e.g. an operation already running). */
export class ConflictError extends AppError {
  override name = "ConflictError";
  constructor(message: string, options: { details?: unknown; code?: string } = {}) {
    super(options.code ?? "conflict", 409, message, options);
  }
}

/** A configuration value is missing or malformed; raised once at start-up. */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly code = "config_invalid";
  readonly missing: string[];
  constructor(message: string, missing: string[] = []) {
    super(message);
    this.missing = missing;
  }
}

/** The message of any thrown value, for reports. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === "string" ? error : JSON.stringify(error);
}
