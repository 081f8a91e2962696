// The job registry: one list of jobs in TypeScript (shared/jobs/mod.ts) and one in SQL (maintenance.scheduled_jobs).
// A throwaway job added through them only (a definition in a registry list, a row in the table, as a new job's
// module and migration would) is scheduled in pg_cron, listed on the dashboard, watched by the dead-man check, in the
// reliability matrices' iteration, and run by npm start's run-once; and the registry agrees with the table.
import assert from "node:assert/strict";
import { z } from "zod";
import { JOBS } from "../shared/jobs/mod.ts";
import type { JobDefinition } from "../shared/jobs/runner.ts";
import { createJobApp } from "../shared/jobs/app.ts";
import { deadManCheck } from "../shared/jobs/deadman.ts";
import { runScheduledJobs, summarize } from "../dev/stack.ts";
import { jobCases } from "./reliability/_cases.ts";
import { matrixInput } from "./reliability/_jobs.ts";
import { stack, testDeps, testSql } from "./_helpers.ts";

Deno.test("every job of the registry has its row in maintenance.scheduled_jobs with its default schedule", async () => {
  const rows = await testSql()<{ job: string; schedule: string }[]>`
    select job, schedule from maintenance.scheduled_jobs order by job`;
  const registry = JOBS.map((j) => ({ job: j.name, schedule: j.schedule })).sort((a, b) => a.job.localeCompare(b.job));
  assert.deepEqual(rows.map((r) => ({ ...r })), registry);
});

Deno.test("a throwaway job added through the registry only is scheduled, listed, watched, in the matrices and run by npm start", async () => {
  const sql = testSql();
  const name = `tmp-job-${crypto.randomUUID().slice(0, 8)}`;
  const throwaway: JobDefinition = {
    name,
    input: z.object({ rounds: z.number().int().min(1).max(3).default(1) }),
    schedule: "17 4 * * *",
    sampleInput: { rounds: 1 },
    summarize: (r) => `throwaway ran ${r.rounds} round(s)`,
    run: ({ input }) => Promise.resolve({ status: "ok", report: { rounds: input.rounds } }),
  };
  const jobs = [...JOBS, throwaway];
  const deps = testDeps();
  const app = createJobApp(throwaway, deps);
  // the throwaway's "deployed function": its job app, served where npm start calls functions
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const url = new URL(req.url);
    url.pathname = url.pathname.replace(/^\/functions\/v1/, "");
    return app.fetch(new Request(url, req));
  });
  try {
    // its migration row, as scheduled a week ago
    await sql`insert into maintenance.scheduled_jobs (job, schedule, created_at)
      values (${name}, ${throwaway.schedule}, now() - interval '7 days')`;

    const [cron] = await sql`select schedule, command, active from cron.job where jobname = ${"canais-" + name}`;
    assert.equal(cron?.schedule, "17 4 * * *", "pg_cron schedules it");
    assert.match(String(cron.command), new RegExp(`maintenance\\.invoke_function\\('${name}'`));
    assert.equal(cron.active, true);

    const listed = await sql`select job, missed from maintenance.dashboard_jobs where job = ${name}`;
    assert.equal(listed.length, 1, "the dashboard's job list has it");
    assert.equal(listed[0].missed, true, "never run in a week: a missed run");
    const deadman = await deadManCheck(sql, { now: new Date() });
    const missed = deadman.missed.find((m) => m.job === name);
    assert.ok(missed, "the dead-man check watches it");
    assert.match(missed.cause, /pg_cron never ran it/);

    const cases = jobCases(throwaway);
    assert.ok(cases.some((c) => c.name.startsWith("'rounds' = ")), "the bad-input matrix has its field's cases");
    assert.deepEqual(matrixInput(throwaway, { tenants: ["x"], apply: true }), { rounds: 1 }, "and its sample input");

    const info = { ...stack(), functionsUrl: `http://127.0.0.1:${server.addr.port}/functions/v1` };
    const results = await runScheduledJobs(info, [throwaway]);
    assert.equal(results.length, 1);
    assert.equal(results[0].job, name);
    assert.equal(results[0].status, "ok", JSON.stringify(results[0]));
    assert.equal(summarize(name, results[0].report, jobs), "throwaway ran 1 round(s)");
    const after = await sql`select last_run_status, missed from maintenance.dashboard_jobs where job = ${name}`;
    assert.deepEqual({ ...after[0] }, { last_run_status: "ok", missed: false }, "the run shows on the dashboard");
  } finally {
    await sql`delete from maintenance.scheduled_jobs where job = ${name}`;
    await sql`delete from maintenance.job_runs where job = ${name}`;
    await server.shutdown();
  }
  const [gone] = await sql`select count(*)::int as n from cron.job where jobname = ${"canais-" + name}`;
  assert.equal(gone.n, 0, "deleting its row unschedules it");
});
