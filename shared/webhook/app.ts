/**
 * @module
 * The `whatsapp-webhook` app: receives Evolution's webhook POSTs (skeleton until the Evolution issue lands).
 */
import type { Hono } from "hono";
import type { Deps } from "../deps.ts";
import { createFunctionApp } from "../http.ts";
import { UnauthorizedError } from "../errors.ts";

/** Builds the whatsapp-webhook app. */
export function createWebhookApp(_deps: Deps): Hono {
  const app = createFunctionApp("whatsapp-webhook");
  app.post("/api/whatsapp/webhook/:slug/:suffix?", () => {
    throw new UnauthorizedError("Missing or invalid webhook token");
  });
  return app;
}
