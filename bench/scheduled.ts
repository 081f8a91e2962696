/**
 * @module
 * Scheduled calls through the real pg_net, which has one worker that sends a batch and commits its answers when the
 * whole batch is done (then waits a second before the next): how long a fast request queued right behind a
 * scheduled call waits until its answer can be read, when the call is answered synchronously
 * (the seed's way: the HTTP request stays open for the job's whole run) and when it asks for an asynchronous answer
 * (ours: `Prefer: respond-async`, a 202 as soon as the run is recorded). The job is health-check on one tenant with
 * the simulator slowed down, so a run takes about `2 × latencyMs`. Both variants send the same body with the same
 * key; only the `Prefer` header differs.
 */
import type { BenchContext, Target } from "./harness.ts";
import { median, ratio, simulatorControl, target } from "./harness.ts";

interface Sample {
  /** From the commit that queued both requests to pg_net's answer to the fast one. */
  behindMs: number;
  /** From the commit to pg_net's answer to the scheduled call itself. */
  answerMs: number;
  status: number | null;
}

async function sample(ctx: BenchContext, slug: string, asyncAnswer: boolean): Promise<Sample> {
  const { sql, info } = ctx;
  const headers = {
    "Content-Type": "application/json",
    apikey: info.cronSecretKey,
    Authorization: `Bearer ${info.cronSecretKey}`,
    ...(asyncAnswer ? { Prefer: "respond-async" } : {}),
  };
  // and starts only once no other health-check holds the job's lease (the test stack's own 5-minute schedule may be
  // running one: ours would then answer 200 skipped instead of 202)
  await leaseFree(sql);
  const t0 = Date.now();
  const [ids] = await sql.begin(async (tx) =>
    await tx<{ call: string; fast: string }[]>`
      select net.http_post(${info.functionsUrl + "/health-check"}, ${tx.json({ tenants: [slug], trigger: "bench" })},
               headers := ${tx.json(headers)}, timeout_milliseconds := 60000) as call,
             net.http_get(${info.functionsUrl + "/no-such-function"}) as fast`
  );
  // When the answer can be READ: pg_net inserts each answer as it arrives, but in the batch's one transaction, so
  // none is visible before the slowest request of the batch is done (`created` says when the batch began).
  const answered = async (id: string) => {
    for (;;) {
      const [r] = await sql<{ status_code: number | null }[]>`
        select status_code from net._http_response where id = ${id}`;
      if (r) return { seenAt: Date.now(), status_code: r.status_code };
      await new Promise((res) => setTimeout(res, 5));
    }
  };
  const [fast, call] = await Promise.all([answered(ids.fast), answered(ids.call)]);
  // the next sample starts once this run has released its lease
  await leaseFree(sql);
  return { behindMs: fast.seenAt - t0, answerMs: call.seenAt - t0, status: call.status_code };
}

/** Waits (up to ~20 s) until no health-check run holds the job's lease. */
async function leaseFree(sql: BenchContext["sql"]) {
  for (let i = 0; i < 2000; i++) {
    const [lease] = await sql`select 1 from maintenance.job_leases where job = 'health-check'`;
    if (!lease) return;
    await new Promise((res) => setTimeout(res, 10));
  }
}

/** Runs the benchmark: `runs` samples each way, alternated, on one tenant of its own. */
export async function benchScheduled(
  ctx: BenchContext,
  options: { latencyMs: number; runs: number },
): Promise<Record<string, unknown>> {
  const sim = simulatorControl(ctx.info.evolutionUrl);
  const slug = `bench-sched-${crypto.randomUUID().slice(0, 8)}`;
  await ctx.sql`
    with t as (insert into public.tenants (slug, name) values (${slug}, 'Bench scheduled') returning id)
    insert into public.tenant_integrations (tenant_id, integration_type, config)
    select t.id, 'whatsapp', jsonb_build_object('instance_name', 'revalya-' || ${slug}, 'environment', 'bench') from t`;
  await sim.seedInstances([[`revalya-${slug}`, { state: "open" }]]);
  await sim.setLatency(options.latencyMs);
  const ours: Sample[] = [];
  const seed: Sample[] = [];
  try {
    for (let i = 0; i < options.runs; i++) {
      seed.push(await sample(ctx, slug, false));
      ours.push(await sample(ctx, slug, true));
    }
  } finally {
    await sim.setLatency(0);
    await ctx.sql`delete from public.tenants where slug = ${slug}`;
  }
  ctx.log(
    `scheduled: behind a synchronous call ${median(seed.map((s) => s.behindMs))} ms, behind ours ${
      median(ours.map((s) => s.behindMs))
    } ms`,
  );
  const oursBehind = median(ours.map((s) => s.behindMs));
  const seedBehind = median(seed.map((s) => s.behindMs));
  const targets: Target[] = [
    target("a request behind a scheduled call waits", oursBehind, { max: 500, text: "< 500 ms (not the job's run)" }),
    target("the scheduled call's 202", median(ours.map((s) => s.answerMs)), { max: 1000, text: "< 1 s" }),
  ];
  return {
    size: { runs: options.runs, simulatorLatencyMs: options.latencyMs },
    ours: oursBehind,
    seed: seedBehind,
    ratio: ratio(oursBehind, seedBehind),
    targets,
    answer: { oursMs: median(ours.map((s) => s.answerMs)), seedMs: median(seed.map((s) => s.answerMs)) },
    statuses: { ours: [...new Set(ours.map((s) => s.status))], seed: [...new Set(seed.map((s) => s.status))] },
  };
}
