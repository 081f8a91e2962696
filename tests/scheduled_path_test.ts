// The scheduled path end to end, with the real pg_net: cron command → pg_net (after commit) → function (202 at once)
// → the run in the background → job_runs row.
import assert from "node:assert/strict";
import { followScheduledCall, stack, testSql, waitFor } from "./_helpers.ts";

Deno.test("cron command of every scheduled job reaches its function and leaves a job_runs row", async () => {
  const sql = testSql();
  const jobs = await sql<{ jobname: string; command: string }[]>`
    select jobname, command from cron.job where jobname like 'canais-%' order by jobname`;
  assert.equal(jobs.length, 5);
  for (const { jobname, command } of jobs) {
    const job = jobname.replace(/^canais-/, "");
    const [{ n: before }] = await sql<{ n: number }[]>`
      select count(*)::int as n from maintenance.job_runs where job = ${job} and trigger = 'cron'`;
    // Run the command as pg_cron does: one statement in its own transaction.
    const [{ invoke_function: requestId }] = await sql.unsafe(command);
    const { run, runId } = await followScheduledCall(requestId, job);
    assert.equal(run.job, job);
    assert.equal(run.trigger, "cron");
    assert.notEqual(run.status, "error", `${job}: ${JSON.stringify(run.report).slice(0, 300)}`);
    await sql`select maintenance.collect_scheduled_calls()`; // what the next scheduled call or dead-man check does
    const [call] =
      await sql`select job, status_code, run_id from maintenance.scheduled_calls where request_id = ${requestId}`;
    assert.deepEqual({ ...call }, { job, status_code: 202, run_id: runId }, "the call and its answer are recorded");
    const [{ n: after }] = await sql<{ n: number }[]>`
      select count(*)::int as n from maintenance.job_runs where job = ${job} and trigger = 'cron'`;
    assert.equal(after, before + 1, `one new cron run of ${job}`);
  }
});

Deno.test("net.http_post in a rolled-back transaction sends nothing", async () => {
  const sql = testSql();
  const marker = crypto.randomUUID();
  let requestId: string | undefined;
  await assert.rejects(
    sql.begin(async (tx) => {
      const [r] = await tx`select net.http_post(${stack().functionsUrl + "/health-check"}, ${
        tx.json({ trigger: "test", marker })
      }) as id`;
      requestId = String(r.id);
      throw new Error("roll back");
    }),
    /roll back/,
  );
  assert.ok(requestId);
  // A committed request queued after it is answered; by then the rolled-back one would have been sent too.
  const [{ id: later }] = await sql`select net.http_get(${stack().functionsUrl + "/no-such-function"}) as id`;
  await waitFor("the later request", async () => {
    const [r] = await sql`select 1 from net._http_response where id = ${later}`;
    return r;
  });
  const sent = await sql`select id from net._http_response where id = ${requestId}`;
  assert.equal(sent.length, 0, "the rolled-back request produced no response row");
  const queued = await sql`select id from net.http_request_queue where id = ${requestId}`;
  assert.equal(queued.length, 0, "and it is not waiting in the queue either");
});

Deno.test("net.http_post honours timeout_milliseconds", async () => {
  const sql = testSql();
  // A listener that never answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const c of listener) conns.push(c);
  })();
  try {
    const [{ id }] = await sql`
      select net.http_post(${`http://127.0.0.1:${port}/`}, '{}'::jsonb, timeout_milliseconds => 300) as id`;
    const r = await waitFor("the timed-out response", async () => {
      const [row] = await sql`select timed_out, error_msg, status_code from net._http_response where id = ${id}`;
      return row;
    });
    assert.equal(r.timed_out, true);
    assert.equal(r.status_code, null);
    assert.match(String(r.error_msg), /Timeout of 300 ms/);
  } finally {
    listener.close();
    for (const c of conns) c.close();
  }
});
