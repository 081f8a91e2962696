/**
 * @module
 * Hono plumbing every function shares: the app factory (basePath, one `onError`, JSON 404), secret-key auth, and
 * request-body parsing that turns every kind of bad input into a 4xx naming what was wrong.
 */
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { z } from "zod";
import { verifyCredentials } from "@supabase/server/core";
import { AppError, UnauthorizedError, ValidationError } from "./errors.ts";
import type { KeySet } from "./config.ts";
import { inspectJson, type JsonProblem, printable, textProblem } from "./strict_json.ts";

/** Largest request body any function reads (bytes). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Compares two strings in time independent of where they differ. */
export function timingSafeEqual(a: string, b: string): boolean {
  const enc = new TextEncoder();
  const x = enc.encode(a);
  const y = enc.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i % x.length] ?? 0) ^ (y[i % y.length] ?? 0);
  return diff === 0;
}

/** The key a request presents: `apikey` header, else `Authorization: Bearer <key>`. */
export function presentedKeys(req: Request): string[] {
  const keys: string[] = [];
  const apikey = req.headers.get("apikey");
  if (apikey) keys.push(apikey.trim());
  const auth = req.headers.get("authorization");
  const m = auth?.match(/^Bearer\s+(.+)$/i);
  if (m) keys.push(m[1].trim());
  return keys;
}

/**
 * The name of the secret key (of `keys`) that one of `presented` is, or null. The comparison is Supabase's own
 * (`verifyCredentials` of `@supabase/server`, mode `secret:*`: any key of the set, timing-safe); each presented
 * value is tried as the `apikey` credential, since callers send the key in `apikey` or as `Authorization: Bearer`.
 */
export async function matchSecretKey(
  presented: string[],
  keys: KeySet,
  options: { supabaseUrl?: string } = {},
): Promise<string | null> {
  if (Object.keys(keys).length === 0) return null;
  // The library needs a project URL to resolve its environment, though a key check never uses it.
  const env = { url: options.supabaseUrl ?? "http://localhost", secretKeys: keys, publishableKeys: {} };
  for (const apikey of new Set(presented)) {
    const { data } = await verifyCredentials({ token: null, apikey }, { auth: "secret:*", env });
    if (data?.keyName) return data.keyName;
  }
  return null;
}

/** Middleware: 401 unless the request carries one of the secret keys (`apikey` or `Authorization: Bearer`). */
export function requireSecretKey(keys: KeySet, options: { supabaseUrl?: string } = {}): MiddlewareHandler {
  return async (c, next) => {
    if (!(await matchSecretKey(presentedKeys(c.req.raw), keys, options))) throw new UnauthorizedError();
    await next();
  };
}

/** The JSON error body. */
export function errorBody(code: string, message: string, details: unknown = null) {
  return { error: { code, message, details } };
}

/**
 * A Hono app for one function: `basePath('/<name>')`, JSON 404 for unknown routes, and the single error handler
 * that maps {@link AppError}s to their status and anything else to a 500 that hides internals.
 */
export function createFunctionApp(name: string): Hono {
  const app = new Hono().basePath(`/${name}`);
  // before any route or key check: a URL whose path or query cannot be read as text is a 400 naming the part
  app.use("*", async (c, next) => {
    const problem = urlProblem(c.req.url);
    if (problem) throw new ValidationError(problem.message, { code: "invalid_url", details: [problem] });
    await next();
  });
  app.notFound((c) =>
    c.json(errorBody("not_found", `No route ${c.req.method} ${new URL(c.req.url).pathname} in function '${name}'`), 404)
  );
  app.onError((err, c) => {
    if (err instanceof AppError) {
      return c.json(errorBody(err.code, err.message, err.details), err.status as 400);
    }
    console.error(JSON.stringify({ level: "error", fn: name, msg: "unhandled error", error: String(err) }));
    return c.json(errorBody("internal_error", "The function failed unexpectedly; see the function logs"), 500);
  });
  return app;
}

/**
 * The first part of a URL that is not text: a malformed percent escape, or a NUL or a lone surrogate once decoded,
 * in a path segment or a query parameter's name or value. Null when the URL is fine.
 */
export function urlProblem(raw: string): { field: string; problem: string; message: string } | null {
  const url = new URL(raw);
  const named = (s: string) => `'${printable(s).slice(1, -1)}'`;
  // other control characters are text a page escapes (the SVG board shows them as U+FFFD); NUL is not storable
  const bad = (s: string) => textProblem(s);
  const words = { nul: "a NUL character", lone_surrogate: "a lone surrogate" };
  for (const seg of url.pathname.split("/")) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(seg);
    } catch {
      return {
        field: "path",
        problem: "malformed",
        message: `Invalid URL path: ${named(seg)} is not a valid percent-encoding`,
      };
    }
    const p = bad(decoded);
    if (p) return { field: "path", problem: p, message: `Invalid URL path: a segment contains ${words[p]}` };
  }
  for (const pair of url.search.replace(/^\?/, "").split("&")) {
    if (!pair) continue;
    const eq = pair.indexOf("=");
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    const rawValue = eq < 0 ? "" : pair.slice(eq + 1);
    let key: string, value: string;
    try {
      key = decodeURIComponent(rawKey.replace(/\+/g, " "));
    } catch {
      return {
        field: "query",
        problem: "malformed",
        message: `Invalid query string: the name ${named(rawKey)} is not a valid percent-encoding`,
      };
    }
    try {
      value = decodeURIComponent(rawValue.replace(/\+/g, " "));
    } catch {
      return {
        field: key,
        problem: "malformed",
        message: `Invalid query parameter ${named(key)}: not a valid percent-encoding`,
      };
    }
    const pk = bad(key);
    if (pk) {
      return { field: "query", problem: pk, message: `Invalid query string: a parameter name contains ${words[pk]}` };
    }
    const pv = bad(value);
    if (pv) {
      return {
        field: key,
        problem: pv,
        message: `Invalid query parameter ${named(key)}: it contains ${words[pv]}`,
      };
    }
  }
  return null;
}

/** Formats zod issues as `{ field, message }` rows and a one-line message naming the fields. */
export function describeIssues(error: z.ZodError, what = "request body"): ValidationError {
  const details = error.issues.map((i) => ({
    field: i.path.length ? i.path.join(".") : "(body)",
    code: i.code,
    message: i.code === "unrecognized_keys"
      ? `unknown field(s): ${(i as { keys?: string[] }).keys?.join(", ")}`
      : i.message,
  }));
  const summary = details.map((d) => `'${d.field}': ${d.message}`).join("; ");
  return new ValidationError(`Invalid ${what}: ${summary}`, { details });
}

/**
 * Reads and validates a JSON body. Empty body = `{}`. 413 over {@link MAX_BODY_BYTES}, 415 for a non-JSON content
 * type, 400 for invalid JSON or a schema failure (the message names each field).
 */
export async function readJson<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  return parseJsonBody(await readJsonText(c), schema);
}

/**
 * The body as text, for {@link parseJsonBody}: "" when empty; 413 over {@link MAX_BODY_BYTES}, 415 for a non-JSON
 * content type, 400 when it is not UTF-8.
 */
export async function readJsonText(c: Context): Promise<string> {
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw tooLarge(declared);
  const text = await readLimited(c.req.raw);
  if (text.trim() === "") return "";
  const type = c.req.header("content-type") ?? "";
  if (!/^application\/([a-z0-9.+-]*\+)?json\b/i.test(type)) {
    throw new AppError(
      "unsupported_media_type",
      415,
      `Cannot read the request body as its content type is '${type || "(none)"}': send application/json`,
    );
  }
  return text;
}

/** The error for a body {@link inspectJson} refused: 400 `invalid_json`, naming the field for a stored-text problem. */
export function jsonProblemError(p: JsonProblem): ValidationError {
  return p.code === "syntax"
    ? new ValidationError(p.message.replace(/^Invalid JSON/, "Invalid JSON in request body"), { code: "invalid_json" })
    : new ValidationError(`Invalid request body: ${p.message}`, {
      code: "invalid_json",
      details: [{ field: p.path, problem: p.code, message: p.message }],
    });
}

/** Checks ({@link inspectJson}) and validates a body read by {@link readJsonText}; an empty body is `{}`. */
export function parseJsonBody<T extends z.ZodType>(text: string, schema: T): z.infer<T> {
  let value: unknown = {};
  if (text !== "") {
    const inspected = inspectJson(text);
    if (!inspected.ok) throw jsonProblemError(inspected.problem);
    value = inspected.value;
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw describeIssues(parsed.error);
  return parsed.data;
}

function tooLarge(size: number): AppError {
  return new AppError(
    "payload_too_large",
    413,
    `Request body too large: ${size} bytes, the limit is ${MAX_BODY_BYTES} bytes`,
  );
}

async function readLimited(req: Request): Promise<string> {
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel();
      throw tooLarge(size);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(all);
  } catch {
    throw new ValidationError("Invalid request body: not valid UTF-8", { code: "invalid_json" });
  }
}
