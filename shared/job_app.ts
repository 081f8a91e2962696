/**
 * @module
 * The Hono app of a scheduled function: `POST /<name>` with the job's input, secret-key auth, and the run
 * response (DESIGN.md) as JSON.
 */
import type { z } from "zod";
import type { Hono } from "hono";
import type { Deps } from "./deps.ts";
import { createFunctionApp, readJson, requireSecretKey } from "./http.ts";
import { type JobDefinition, runJob, Trigger } from "./jobs/runner.ts";

/** Builds the app that serves one job. */
export function createJobApp<S extends z.ZodObject>(job: JobDefinition<S>, deps: Deps): Hono {
  const app = createFunctionApp(job.name);
  app.use("*", requireSecretKey(deps.config.secretKeys, { supabaseUrl: deps.config.supabaseUrl }));
  const body = job.input.extend({ trigger: Trigger.optional() }).strict();
  app.post("/", async (c) => {
    const { trigger, ...input } = await readJson(c, body) as z.infer<S> & { trigger?: Trigger };
    const response = await runJob(deps, job, { input: input as z.infer<S>, trigger: trigger ?? "manual" });
    return c.json(response, 200);
  });
  return app;
}
