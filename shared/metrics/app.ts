/**
 * @module
 * The `metrics` app: `GET /metrics` answers the Prometheus text format (0.0.4), or OpenMetrics 1.0 when the
 * `Accept` header asks for `application/openmetrics-text`, built from one `maintenance.metrics_snapshot()` call
 * (./render.ts lists the families). Never world-readable: a secret key (`apikey` / `Authorization: Bearer`), or the
 * read-only `METRICS_TOKEN` (`Authorization: Bearer`, what Prometheus' `authorization` block sends, `apikey`, or
 * `x-metrics-token`). The metrics token opens this function only; it is never in the URL.
 */
import type { Context, Hono, MiddlewareHandler } from "hono";
import type { Deps } from "../deps.ts";
import { UnauthorizedError } from "../errors.ts";
import type { KeySet } from "../config.ts";
import { createFunctionApp, errorBody, matchSecretKey, presentedKeys, timingSafeEqual } from "../http.ts";
import { metricsRegistry, type MetricsSnapshot, OPENMETRICS_CONTENT_TYPE } from "./render.ts";

/** Header carrying the read-only metrics token (alternative to Bearer). */
export const METRICS_TOKEN_HEADER = "x-metrics-token";

/** Per-tenant series are emitted for at most this many tenants that are not healthy (worst first). */
export const METRICS_TENANT_LIMIT = 500;

/** Trailing window (seconds) of the windowed families. */
export const METRICS_WINDOW_SECONDS = 3600;

/** Middleware: 401 unless the request carries a secret key or the read-only metrics token. */
export function requireMetricsAccess(
  secretKeys: KeySet,
  metricsToken?: string,
  options: { supabaseUrl?: string } = {},
): MiddlewareHandler {
  return async (c, next) => {
    const presented = [...presentedKeys(c.req.raw), c.req.header(METRICS_TOKEN_HEADER)?.trim()]
      .filter((k): k is string => Boolean(k));
    const ok = (metricsToken !== undefined && presented.some((p) => timingSafeEqual(p, metricsToken))) ||
      (await matchSecretKey(presented, secretKeys, options)) !== null;
    if (!ok) {
      throw new UnauthorizedError(
        "Metrics need the read-only METRICS_TOKEN (Authorization: Bearer) or a secret key ('apikey' or Bearer)",
      );
    }
    await next();
  };
}

/** Reads the snapshot in one statement. */
export async function loadMetricsSnapshot(
  sql: Deps["sql"],
  options: { asOf?: Date; tenantLimit?: number; windowSeconds?: number } = {},
): Promise<MetricsSnapshot> {
  const [row] = await sql<{ s: MetricsSnapshot }[]>`
    select maintenance.metrics_snapshot(${options.asOf ?? new Date()}, ${options.tenantLimit ?? METRICS_TENANT_LIMIT},
      ${options.windowSeconds ?? METRICS_WINDOW_SECONDS}) as s`;
  return row.s;
}

async function scrape(deps: Deps, c: Context) {
  let snapshot: MetricsSnapshot;
  try {
    snapshot = await loadMetricsSnapshot(deps.sql, { asOf: deps.now() });
  } catch (error) {
    console.error(JSON.stringify({ level: "error", fn: "metrics", msg: "snapshot failed", error: String(error) }));
    return c.json(errorBody("database_unavailable", "The metrics snapshot could not be read from the database"), 503);
  }
  const openMetrics = (c.req.header("accept") ?? "").includes("application/openmetrics-text");
  const registry = metricsRegistry(snapshot, openMetrics);
  return c.body(await registry.metrics(), 200, {
    "content-type": registry.contentType,
    "cache-control": "no-store",
  });
}

/** Builds the metrics app. */
export function createMetricsApp(deps: Deps): Hono {
  const app = createFunctionApp("metrics");
  app.use(
    "*",
    requireMetricsAccess(deps.config.secretKeys, deps.config.metricsToken, { supabaseUrl: deps.config.supabaseUrl }),
  );
  app.get("/", (c) => scrape(deps, c));
  app.get("", (c) => scrape(deps, c));
  return app;
}

export { OPENMETRICS_CONTENT_TYPE };
