/**
 * @module
 * The Hono app of a scheduled function: `POST /<name>` with the job's input, secret-key auth, and the run
 * response as JSON.
 *
 * A caller that asks for an asynchronous answer (`Prefer: respond-async`, RFC 7240: what the pg_cron schedules
 * send) gets `202 {job, runId, status: "running"}` as soon as the run is recorded, and the run goes on in the
 * background (`EdgeRuntime.waitUntil` on Supabase; the local functions router provides the same), so pg_net's one
 * worker, which waits for every request of a batch, is never held for a job's duration. A run that cannot start is
 * answered at once with its final response: 200 `skipped` (another run holds the lease), or 503 when the database
 * is unreachable (nothing could be recorded; the body says why and what to hand to the next scheduled call).
 * Every other call is answered when the run ends, with the response `maintenance.job_runs` stores.
 */
import { z } from "zod";
import type { Hono } from "hono";
import type { Deps } from "../deps.ts";
import { createFunctionApp, readJson, requireSecretKey } from "../http.ts";
import { Carry, type JobDefinition, type JobRunResponse, runJob, Trigger } from "./runner.ts";

/** Whether a `Prefer` header asks for an asynchronous answer (`respond-async` among its preferences). */
export function prefersAsync(prefer: string | undefined | null): boolean {
  return (prefer ?? "").split(",").some((p) => p.split(";")[0].trim().toLowerCase() === "respond-async");
}

type EdgeRuntimeGlobal = { EdgeRuntime?: { waitUntil?: (p: Promise<unknown>) => void } };

/**
 * Keeps `work` running after the answer has gone out: `EdgeRuntime.waitUntil` where the runtime has it (Supabase,
 * the local router); elsewhere (in-process tests) the promise simply goes on. Never rejects.
 */
export function runInBackground(work: Promise<unknown>, name: string): void {
  const guarded = work.catch((error) =>
    console.error(JSON.stringify({ level: "error", fn: name, msg: "background run failed", error: String(error) }))
  );
  (globalThis as EdgeRuntimeGlobal).EdgeRuntime?.waitUntil?.(guarded);
}

/** Builds the app that serves one job. */
export function createJobApp<S extends z.ZodObject>(job: JobDefinition<S>, deps: Deps): Hono {
  const app = createFunctionApp(job.name);
  app.use("*", requireSecretKey(deps.config.secretKeys, { supabaseUrl: deps.config.supabaseUrl }));
  const body = job.input.extend({ trigger: Trigger.optional(), carry: Carry.optional() }).strict();
  app.post("/", async (c) => {
    const { trigger, carry, ...input } = await readJson(c, body) as z.infer<S> & { trigger?: Trigger; carry?: Carry };
    const options = { input: input as z.infer<S>, trigger: trigger ?? "manual", carry };
    if (!prefersAsync(c.req.header("prefer"))) return c.json(await runJob(deps, job, options), 200);

    let started!: (runId: string) => void;
    const recorded = new Promise<string>((resolve) => (started = resolve));
    const run = runJob(deps, job, { ...options, onStarted: started });
    runInBackground(run, job.name);
    const first = await Promise.race([
      recorded.then((runId) => ({ runId })),
      run.then((response: JobRunResponse) => ({ response })),
    ]);
    if ("runId" in first) {
      return c.json({ job: job.name, runId: first.runId, status: "running" }, 202, {
        "preference-applied": "respond-async",
      });
    }
    return c.json(first.response, first.response.status === "skipped" ? 200 : 503);
  });
  return app;
}
