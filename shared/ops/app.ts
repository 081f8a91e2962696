/**
 * @module
 * The `whatsapp-ops` app: on-demand diagnose / fix / reconnect / reset / migrate of one tenant (skeleton: the
 * routes, auth and validation are real; the actions land with their issue).
 */
import { z } from "zod";
import type { Hono } from "hono";
import type { Deps } from "../deps.ts";
import { createFunctionApp, readJson, requireSecretKey } from "../http.ts";
import { Slug } from "../naming.ts";

const TenantBody = z.object({ slug: Slug }).strict();

/** Builds the whatsapp-ops app. */
export function createOpsApp(deps: Deps): Hono {
  const app = createFunctionApp("whatsapp-ops");
  app.use("*", requireSecretKey(deps.config.secretKey));
  for (const action of ["diagnose", "fix", "reconnect", "reset", "migrate"]) {
    app.post(`/${action}`, async (c) => {
      const body = await readJson(c, TenantBody);
      return c.json({ action, tenant: body.slug, implemented: false });
    });
  }
  return app;
}
