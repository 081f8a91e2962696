/**
 * @module
 * The `status-page` app: `GET /status-page` (and `/status-page/`) answers one self-contained HTML page (overall
 * status, Evolution/DB health from the last health-check run, tenants with 24 h and 7 day availability bars, open
 * alerts, jobs). `?format=svg` answers the same board as a standalone SVG document (Edge Functions on
 * `*.supabase.co` serve HTML as `text/plain`, an SVG is shown as a picture), `?format=json` the same data as
 * versioned JSON (docs/STATUS_PAGE.md). Every format reads the same `loadStatus` and goes through the same access
 * check. Never world-readable: the secret key (`apikey` / `Authorization: Bearer`) or the read-only
 * `STATUS_PAGE_TOKEN` (`?token=`, `x-status-token`, or as a Bearer/apikey); the secret key also works as `?token=`
 * (the local stack prints such a URL). The page runs no script, and its Content-Security-Policy forbids any.
 */
import type { Context, Hono, MiddlewareHandler } from "hono";
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { UnauthorizedError } from "../errors.ts";
import type { KeySet } from "../config.ts";
import { createFunctionApp, describeIssues, matchSecretKey, presentedKeys, timingSafeEqual } from "../http.ts";
import { loadStatus, TENANT_LIMIT } from "./data.ts";
import { statusJson } from "./json.ts";
import { renderPage } from "./render.ts";
import { renderSvg } from "./svg.ts";

/** Header carrying the read-only token (alternative to `?token=`). */
export const STATUS_TOKEN_HEADER = "x-status-token";

/** The formats the page answers in: `html` (default), `svg`, `json`. */
export const StatusPageFormat = z.enum(["html", "svg", "json"], {
  error: "must be one of 'html' (the default), 'svg', 'json'",
});
export type StatusPageFormat = z.infer<typeof StatusPageFormat>;

/** Query parameters of the page; unknown ones are ignored. */
export const StatusPageQuery = z.object({
  format: StatusPageFormat.default("html"),
  limit: z.coerce.number().int().min(1).max(TENANT_LIMIT.max).default(TENANT_LIMIT.default),
  q: z.string().trim().max(100).optional(),
  token: z.string().optional(),
});
export type StatusPageQuery = z.infer<typeof StatusPageQuery>;

/** Headers of every page: no caching, no referrer (the URL may carry the token), no script, no framing. */
export const PAGE_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "content-security-policy":
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
};

/** Content type of `?format=svg`. */
export const SVG_CONTENT_TYPE = "image/svg+xml; charset=utf-8";

/** Seconds after which a browser showing the SVG board reloads it (a `Refresh` header: SVG has no meta refresh). */
export const SVG_REFRESH_SECONDS = 60;

/**
 * Middleware: 401 unless the request carries one of the secret keys (checked by {@link matchSecretKey}) or the
 * read-only status page token, in any of the accepted places.
 */
export function requireStatusAccess(
  secretKeys: KeySet,
  statusPageToken?: string,
  options: { supabaseUrl?: string } = {},
): MiddlewareHandler {
  return async (c, next) => {
    const presented = [
      ...presentedKeys(c.req.raw),
      c.req.header(STATUS_TOKEN_HEADER)?.trim(),
      c.req.query("token")?.trim(),
    ].filter((k): k is string => Boolean(k));
    const ok = (statusPageToken !== undefined && presented.some((p) => timingSafeEqual(p, statusPageToken))) ||
      (await matchSecretKey(presented, secretKeys, options)) !== null;
    if (!ok) {
      throw new UnauthorizedError(
        "The status page needs a token: open it with ?token=<STATUS_PAGE_TOKEN>, or send the secret key as 'apikey' or 'Authorization: Bearer'",
      );
    }
    await next();
  };
}

async function page(deps: Deps, c: Context) {
  const parsed = StatusPageQuery.safeParse(c.req.query());
  if (!parsed.success) throw describeIssues(parsed.error, "query string");
  const { format, limit, q, token } = parsed.data;
  const asOf = deps.now();
  const search = q || undefined;
  const data = await loadStatus(deps.sql, { asOf, limit, search: q });
  // only the read-only token is carried in the search form and the links: the secret key is never written into a page
  const readOnly = token && deps.config.statusPageToken && timingSafeEqual(token.trim(), deps.config.statusPageToken)
    ? token
    : undefined;
  if (format === "json") return c.json(statusJson(data, { asOf, limit, search }), 200, PAGE_HEADERS);
  if (format === "svg") {
    const body = renderSvg(data, { asOf, search, token: readOnly, limit });
    return c.body(body, 200, {
      ...PAGE_HEADERS,
      "content-type": SVG_CONTENT_TYPE,
      refresh: String(SVG_REFRESH_SECONDS),
    });
  }
  const body = await renderPage(data, { asOf, search, token: readOnly, limit });
  return c.html(body.toString().trimStart(), 200, PAGE_HEADERS);
}

/** Builds the status-page app. */
export function createStatusPageApp(deps: Deps): Hono {
  const app = createFunctionApp("status-page");
  app.use(
    "*",
    requireStatusAccess(deps.config.secretKeys, deps.config.statusPageToken, { supabaseUrl: deps.config.supabaseUrl }),
  );
  app.get("/", (c) => page(deps, c));
  app.get("", (c) => page(deps, c));
  return app;
}
