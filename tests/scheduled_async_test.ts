// Scheduled calls through the real pg_net: answered 202 at once while the job runs on in the background, so the
// one pg_net worker is never held for a job's duration; a run whose isolate dies mid-run is seen as such by the
// dead-man check and taken over by the next run; and a database the functions cannot reach is told at most twice
// over an hour of runs (once down, once back) even though every run gets a new isolate.
import assert from "node:assert/strict";
import { startReceivers } from "../dev/receivers.ts";
import { type DeadManStatus, missedRunCause } from "../shared/jobs/deadman.ts";
import {
  followScheduledCall,
  netResponse,
  pointScheduledCallsAt,
  stack,
  startRouter,
  testSql,
  waitFor,
} from "./_helpers.ts";

const NO_TENANT = { tenants: ["no-such-tenant-async"] };

async function simLatency(ms: number) {
  const res = await fetch(`${stack().evolutionUrl}/_control/setLatency`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify([ms]),
  });
  await res.body?.cancel();
  assert.equal(res.status, 200);
}

async function cronCommand(job: string): Promise<string> {
  const [row] = await testSql()<{ command: string }[]>`select command from cron.job where jobname = ${"canais-" + job}`;
  return row.command;
}

const port = (offset: number) => Number(new URL(stack().functionsUrl).port) + offset;

Deno.test("a scheduled call gets pg_net's 202 within a second while its job runs on, and the worker is not held", async () => {
  const sql = testSql();
  await simLatency(1500); // health-check's two Evolution calls now take 3 s at least
  try {
    const queuedAt = Date.now();
    const [{ invoke_function: id }] = await sql.unsafe(await cronCommand("health-check"));
    // right behind it, for the same single pg_net worker: a request to something fast
    const [{ id: other }] = await sql`select net.http_get(${stack().functionsUrl + "/no-such-function"}) as id`;
    // pg_net commits a batch's answers together, once its slowest request is done: time when they can be read
    const answer = await netResponse(id);
    const answeredMs = Date.now() - queuedAt;
    const otherAnswer = await netResponse(other);
    const otherSeenAt = Date.now();
    const { run } = await followScheduledCall(id, "health-check");
    const finished = new Date(run.finished_at!).getTime();
    assert.ok(answeredMs < 1000, `pg_net's 202 could be read after ${answeredMs} ms`);
    assert.ok(finished - (queuedAt + answeredMs) >= 2000, "the job went on for seconds after the answer");
    assert.equal(answer.status_code, 202);
    assert.equal(otherAnswer.status_code, 404);
    assert.ok(
      otherSeenAt < finished - 1000,
      "the request queued behind the scheduled call was answered long before the job ended",
    );
    assert.equal(run.trigger, "cron");
    assert.notEqual(run.status, "error", JSON.stringify(run.report).slice(0, 300));
  } finally {
    await simLatency(0);
  }
});

Deno.test("a background run whose isolate dies mid-run stays 'running', the dead-man check says so, the next run takes over", async () => {
  const sql = testSql();
  const router = await startRouter(port(41));
  const vault = await pointScheduledCallsAt(router.functionsUrl);
  let second: Awaited<ReturnType<typeof startRouter>> | undefined;
  await simLatency(3000);
  try {
    const [{ invoke_function: id }] = await sql.unsafe(await cronCommand("health-check"));
    const answer = await netResponse(id);
    assert.equal(answer.status_code, 202, String(answer.content));
    const { runId } = JSON.parse(answer.content!);
    await router.stop("SIGKILL"); // the isolate goes away with the run in the middle of its Evolution calls
    await new Promise((r) => setTimeout(r, 500));
    const [row] = await sql`select status, finished_at from maintenance.job_runs where id = ${runId}`;
    assert.deepEqual(
      { ...row },
      { status: "running", finished_at: null },
      "the row says what happened: never finished",
    );
    const [lease] = await sql`select run_id from maintenance.job_leases where job = 'health-check'`;
    assert.equal(lease?.run_id, runId, "its lease is still held (until it expires)");
    const status = await sql<DeadManStatus[]>`
      select * from maintenance.deadman_status() where job = 'health-check'`;
    assert.equal(status[0].last_run_status, "running");
    assert.match(missedRunCause(status[0]), /never finished/);

    await simLatency(0);
    second = await startRouter(port(41));
    await sql`update maintenance.job_leases set expires_at = now() - interval '1 second' where job = 'health-check'`;
    const [{ id: next }] = await sql`select maintenance.invoke_function('health-check', ${sql.json(NO_TENANT)}) as id`;
    const { run } = await followScheduledCall(next, "health-check");
    assert.deepEqual((run.report.abandonedRun as { runId: string }).runId, runId, "the next run names the dead one");
  } finally {
    await simLatency(0);
    await vault.restore();
    await router.stop("SIGKILL");
    await second?.stop();
  }
});

Deno.test("a database the functions cannot reach for an hour of runs, a new isolate each run: told once, and once back", async () => {
  const sql = testSql();
  const rx = await startReceivers();
  const env = { SLACK_WEBHOOK_URL: rx.slackUrl };
  const down = { ...env, SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:1/postgres" };
  const routerPort = port(42);
  const vault = await pointScheduledCallsAt(`http://127.0.0.1:${routerPort}/functions/v1`);
  const about = (needle: string) => rx.control.received("slack").filter((m) => JSON.stringify(m.body).includes(needle));
  // the calls pg_cron makes: full runs (`{}`), since a run scoped to some tenants alerts nothing about the platform
  const ALL = {};
  try {
    for (let i = 0; i < 12; i++) { // every five minutes for an hour, each call in an isolate of its own
      const router = await startRouter(routerPort, down);
      try {
        const [{ id }] = await sql`select maintenance.invoke_function('health-check', ${sql.json(ALL)}) as id`;
        const answer = await netResponse(id);
        assert.equal(answer.status_code, 503, String(answer.content));
        const body = JSON.parse(answer.content!);
        assert.match(body.report.error, /database is unavailable/);
        assert.ok(body.carry?.databaseOutage?.since, "the answer hands the outage to the next call");
      } finally {
        await router.stop();
      }
    }
    assert.equal(about("Database unreachable").length, 1, "one notification for the outage, not one per run");
    await sql`select maintenance.collect_scheduled_calls()`;
    const [{ n }] = await sql`
      select count(*)::int as n from (select status_code from maintenance.scheduled_calls
        where job = 'health-check' order by requested_at desc limit 12) c where c.status_code = 503`;
    assert.equal(n, 12, "each of the twelve calls is recorded with its 503");

    const router = await startRouter(routerPort, env); // the database answers again
    try {
      const [{ id }] = await sql`select maintenance.invoke_function('health-check', ${sql.json(ALL)}) as id`;
      const { run } = await followScheduledCall(id, "health-check");
      assert.equal(run.report.databaseRecovered, true, JSON.stringify(run.report).slice(0, 300));
      await waitFor(
        "the RESOLVED notification",
        () => Promise.resolve(about("[RESOLVED] Database unreachable").length),
      );
    } finally {
      await router.stop();
    }
    const told = about("Database unreachable");
    assert.equal(told.length, 2, told.map((m) => JSON.stringify(m.body).slice(0, 120)).join("\n"));
  } finally {
    await vault.restore();
    await rx.close();
  }
});
