/**
 * @module
 * The `status-page` app: an HTML status page (skeleton until the status page issue lands).
 */
import type { Hono } from "hono";
import type { Deps } from "../deps.ts";
import { createFunctionApp, requireSecretKey } from "../http.ts";

/** Builds the status-page app. */
export function createStatusPageApp(deps: Deps): Hono {
  const app = createFunctionApp("status-page");
  app.use("*", requireSecretKey(deps.config.secretKey));
  app.get("/", (c) => c.html("<!doctype html><title>Status</title><p>Status page not implemented yet.</p>"));
  return app;
}
