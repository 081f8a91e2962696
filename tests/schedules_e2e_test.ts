// The schedules end to end, beyond the foundation's scheduled_path_test.ts (which checks one job_runs row per
// cron.job command): the cleanup and weekly-report commands produce their real reports through pg_net with the key
// from Vault, and a call made with a wrong key is visible as a 401 in net._http_response with no run recorded.
import assert from "node:assert/strict";
import { followScheduledCall, testSql, waitFor } from "./_helpers.ts";

async function response(requestId: string | number) {
  return await waitFor(`the response to request ${requestId}`, async () => {
    const [r] = await testSql()<{ status_code: number | null; content: string | null; error_msg: string | null }[]>`
      select status_code, content, error_msg from net._http_response where id = ${requestId}`;
    return r;
  });
}

async function cronCommand(job: string): Promise<string> {
  const [row] = await testSql()<{ command: string }[]>`select command from cron.job where jobname = ${"canais-" + job}`;
  assert.ok(row, `canais-${job} is scheduled`);
  return row.command;
}

Deno.test("cron commands of cleanup-logs and weekly-report run the real jobs and store their reports", async () => {
  const sql = testSql();
  for (const job of ["cleanup-logs", "weekly-report"]) {
    // as pg_cron runs it: the command text, one statement in its own transaction
    const [{ invoke_function: id }] = await sql.unsafe(await cronCommand(job));
    const { run } = await followScheduledCall(id, job);
    // deno-lint-ignore no-explicit-any
    const report = run.report as any;
    assert.equal(run.job, job);
    assert.equal(run.trigger, "cron");
    assert.equal(run.status, "ok", JSON.stringify(report));
    if (job === "cleanup-logs") {
      assert.equal(report.dryRun, false, "the scheduled purge is not a dry run");
      assert.ok("public.api_logs" in report.deleted);
      assert.equal(typeof report.remaining, "boolean");
    } else {
      assert.equal(report.period.days, 7, "the scheduled report covers the last 7 days");
      assert.ok(["normal", "slow_api", "high_error_rate"].includes(report.diagnosis));
      assert.equal(typeof report.performance.totalRequests, "number");
    }
  }
});

Deno.test("a scheduled call with a wrong secret key shows up as a 401 in net._http_response and records no run", async () => {
  const sql = testSql();
  const [{ n: before }] = await sql`select count(*)::int as n from maintenance.job_runs where job = 'weekly-report'`;
  // The key is read from Vault when the command runs; point it at a wrong one for this one call only.
  const id = await sql.begin(async (tx) => {
    // Vault's own functions (the secret column is ciphertext: a plain UPDATE would store an undecryptable value)
    const [{ id, secret }] = await tx`
      select id, decrypted_secret as secret from vault.decrypted_secrets where name = 'secret_key'`;
    await tx`select vault.update_secret(${id}, 'sb_secret_wrong_key_for_test')`;
    const [{ invoke_function: requestId }] = await tx.unsafe(await cronCommand("weekly-report"));
    await tx`select vault.update_secret(${id}, ${secret})`;
    return requestId as string;
  });
  const r = await response(id);
  assert.equal(r.status_code, 401, String(r.content));
  assert.equal(JSON.parse(r.content!).error.code, "unauthorized");
  const [{ n: after }] = await sql`select count(*)::int as n from maintenance.job_runs where job = 'weekly-report'`;
  assert.equal(after, before, "a refused call records no run");
});
