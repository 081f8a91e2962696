// The batched conversion of api_logs (README "Retention by partition"): forward and back while a writer on its own
// connection inserts, updates and deletes continuously: no row lost or duplicated, every id and every row's content
// kept, the writer never held for the copy; and the bundle (weekly report, cleanup-logs) gives the same answers on
// both layouts.
import assert from "node:assert/strict";
import postgres from "postgres";
import { cleanupLogs } from "../shared/jobs/cleanup_logs.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { stack, testDeps, testSql, uniqueSlug } from "./_helpers.ts";

const DAY = 86_400_000;

async function layout(): Promise<boolean> {
  const [{ p }] = await testSql()<{ p: boolean }[]>`select maintenance.api_logs_is_partitioned() as p`;
  return p;
}

/** Runs the whole batched conversion (the procedure commits after each step, so no transaction around it). */
async function convert(toPartitioned: boolean, batchSize = 20_000) {
  await testSql()`call maintenance.api_logs_convert(${toPartitioned}, ${batchSize})`;
  assert.equal(await layout(), toPartitioned);
}

/** id → md5 of the whole row, for the rows of some tenants. */
async function fingerprint(slugs: string[]): Promise<Map<string, string>> {
  const rows = await testSql()<{ id: string; h: string }[]>`
    select id::text, md5(t::text) as h from public.api_logs t where tenant_slug = any(${slugs})`;
  return new Map(rows.map((r) => [r.id, r.h]));
}

interface WriterLog {
  inserted: string[];
  updated: Map<string, string>;
  deleted: Set<string>;
  latencies: number[];
  insertLatencies: number[];
  errors: string[];
}

/** Inserts (and every few rounds updates or deletes a seeded row) on its own connection until stopped. */
function startWriter(slug: string, seeded: string[]) {
  const sql = postgres(stack().dbUrl, { max: 1, onnotice: () => {} });
  const log: WriterLog = {
    inserted: [],
    updated: new Map(),
    deleted: new Set(),
    latencies: [],
    insertLatencies: [],
    errors: [],
  };
  let stopping = false;
  const loop = (async () => {
    for (let i = 0; !stopping; i++) {
      const t0 = performance.now();
      try {
        if (i % 7 === 3) {
          const id = seeded[(i * 7919) % seeded.length];
          if (!log.deleted.has(id)) {
            await sql`update public.api_logs set status = ${"upd-" + i} where id = ${id}`;
            log.updated.set(id, "upd-" + i);
          }
        } else if (i % 11 === 5) {
          const id = seeded[(i * 104729) % seeded.length];
          await sql`delete from public.api_logs where id = ${id}`;
          log.deleted.add(id);
          log.updated.delete(id);
        } else {
          const [{ id }] = await sql<{ id: string }[]>`
            insert into public.api_logs (tenant_slug, service, event, status, response_time)
            values (${slug}, 'evolution', 'writer', 'success', ${i % 1000}) returning id::text as id`;
          log.inserted.push(id);
          log.insertLatencies.push(performance.now() - t0);
        }
        log.latencies.push(performance.now() - t0);
      } catch (error) {
        log.errors.push(error instanceof Error ? error.message : String(error));
      }
    }
  })();
  return {
    log,
    async stop() {
      stopping = true;
      await loop;
      await sql.end();
      return log;
    },
  };
}

Deno.test("the batched conversion, forward and back, loses, duplicates and alters no row while a writer runs", async () => {
  const sql = testSql();
  assert.equal(await layout(), false, "starts on the plain layout");
  const seedSlug = uniqueSlug("pcs");
  const writerSlug = uniqueSlug("pcw");
  const now = Date.now();
  await sql`insert into public.api_logs (created_at, tenant_slug, service, event, status, response_time, data)
    select ${new Date(now)}::timestamptz - (g % 20) * interval '1 day' - (g % 86400) * interval '1 second',
      ${seedSlug}, 'evolution', 'seed', case when g % 9 = 0 then 'error' else 'success' end, g % 3000,
      jsonb_build_object('g', g)
    from generate_series(1, 200000) g`;
  const before = await fingerprint([seedSlug]);
  const seeded = [...before.keys()];
  const writer = startWriter(writerSlug, seeded);
  let log: WriterLog;
  const timings: Record<string, number> = {};
  try {
    await new Promise((r) => setTimeout(r, 300));
    let t0 = performance.now();
    await convert(true);
    timings.forwardMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 300));
    t0 = performance.now();
    await convert(false);
    timings.backMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    log = await writer.stop();
  }
  assert.deepEqual(log.errors, [], "the writer never failed");
  assert.ok(log.inserted.length > 100, `the writer kept writing: ${log.inserted.length} inserts`);
  assert.ok(log.updated.size > 10 && log.deleted.size > 10, "and updated and deleted seeded rows");

  const after = await fingerprint([seedSlug]);
  const expectedIds = seeded.filter((id) => !log.deleted.has(id));
  assert.equal(after.size, expectedIds.length, "every seeded row not deleted by the writer is there, once");
  let changed = 0;
  for (const id of expectedIds) {
    assert.ok(after.has(id), `seeded row ${id} kept`);
    if (!log.updated.has(id) && after.get(id) !== before.get(id)) changed++;
  }
  assert.equal(changed, 0, "no row's content changed but the writer's updates");
  const updated = await sql<{ id: string; status: string }[]>`
    select id::text, status from public.api_logs where id = any(${[...log.updated.keys()]}::bigint[])`;
  assert.deepEqual(
    Object.fromEntries(updated.map((r) => [r.id, r.status])),
    Object.fromEntries(log.updated),
    "every update of the writer is there",
  );
  const [w] = await sql<{ n: number; ids: number }[]>`
    select count(*)::int as n, count(distinct id)::int as ids from public.api_logs where tenant_slug = ${writerSlug}`;
  assert.equal(w.n, log.inserted.length, "every row the writer inserted is there, once");
  assert.equal(w.ids, log.inserted.length);
  const [{ dup }] = await sql<{ dup: number }[]>`
    select count(*)::int as dup from (select id from public.api_logs group by id having count(*) > 1) d`;
  assert.equal(dup, 0, "no id twice in the whole table");
  const [{ fresh, top }] = await sql<{ fresh: string; top: string }[]>`
    with i as (insert into public.api_logs (tenant_slug) values (${writerSlug}) returning id)
    select (select id from i)::text as fresh, ${log.inserted.at(-1)!}::text as top`;
  assert.ok(BigInt(fresh) > BigInt(top), "the identity continues after the highest id");
  const [left] = await sql<{ next: string | null; trig: number; state: number }[]>`
    select to_regclass('public.api_logs_next')::text as next,
      (select count(*)::int from pg_trigger where tgname like 'api_logs_conversion_mirror%') as trig,
      (select count(*)::int from maintenance.api_logs_conversion) as state`;
  assert.deepEqual(left, { next: null, trig: 0, state: 0 }, "nothing of the conversion is left");

  // the writer is held only by the brief locks (the mirror's install, the swap), never for a copy
  // (an update of a row in the batch being copied waits for that batch: the inserts wait for nothing of the copy)
  const worst = Math.max(...log.latencies);
  console.log(
    `conversion of 200,000 rows: forward ${Math.round(timings.forwardMs)} ms, back ${Math.round(timings.backMs)} ms; ` +
      `writer: ${log.latencies.length} statements, max ${worst.toFixed(1)} ms; inserts max ${
        Math.max(...log.insertLatencies).toFixed(1)
      } ms`,
  );
  assert.ok(
    worst < Math.min(timings.forwardMs, timings.backMs) / 2,
    `the writer never waited for the copy: worst ${worst.toFixed(0)} ms, conversions ${JSON.stringify(timings)}`,
  );
  await sql`delete from public.api_logs where tenant_slug in (${seedSlug}, ${writerSlug})`;
});

Deno.test("a conversion under way: a second start is refused, the swap waits for the copy, abort leaves api_logs as it was", async () => {
  const sql = testSql();
  const slug = uniqueSlug("pca");
  await sql`insert into public.api_logs (tenant_slug, service, event, status)
    select ${slug}, 'evolution', 'x', 'success' from generate_series(1, 50)`;
  const before = await fingerprint([slug]);
  assert.equal((await sql`select maintenance.api_logs_convert_start(true) as r`)[0].r, "started");
  try {
    await assert.rejects(sql`select maintenance.api_logs_convert_start(true)`, /already under way/);
    await assert.rejects(sql`select maintenance.api_logs_convert_finish()`, /copy is not done/);
    await sql`insert into public.api_logs (tenant_slug) values (${slug})`;
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.api_logs_next where tenant_slug = ${slug}`;
    assert.equal(n, 1, "a write during the conversion is mirrored at once");
  } finally {
    assert.equal((await sql`select maintenance.api_logs_convert_abort() as r`)[0].r, "aborted");
  }
  assert.equal(await layout(), false);
  const after = await fingerprint([slug]);
  assert.equal(after.size, before.size + 1);
  for (const [id, h] of before) assert.equal(after.get(id), h);
  const [{ next }] = await sql`select to_regclass('public.api_logs_next')::text as next`;
  assert.equal(next, null);
  await sql`delete from public.api_logs where tenant_slug = ${slug}`;
});

/** The same shape of rows for a tenant: expired and kept ones, a quiet tenant's one old connection.update. */
async function seedRetention(slug: string, quiet: string, now: Date) {
  const sql = testSql();
  const at = (days: number, extraMs = 0) => new Date(now.getTime() - days * DAY + extraMs);
  const rows = [45, 40, 33, 31, 30.5, 29, 10, 0.5].map((d, i) => ({
    tenant_slug: slug,
    service: "whatsapp",
    event: i % 3 ? "connect" : "connection.update",
    status: i % 4 ? "success" : "error",
    created_at: at(d),
  }));
  rows.push({
    tenant_slug: quiet,
    service: "whatsapp",
    event: "connection.update",
    status: "success",
    created_at: at(50),
  });
  await sql`insert into public.api_logs ${sql(rows, "tenant_slug", "service", "event", "status", "created_at")}`;
}

async function leftOf(slugs: string[], now: Date) {
  const rows = await testSql()<{ slug: string; at: Date; event: string; status: string }[]>`
    select tenant_slug as slug, created_at as at, event, status from public.api_logs where tenant_slug = any(${slugs})
    order by created_at, event`;
  // relative to the run's clock, slug-free, so the two layouts' answers compare
  return rows.map((r) => [Math.round((now.getTime() - new Date(r.at).getTime()) / 3_600_000), r.event, r.status]);
}

async function weekly(slug: string) {
  const sql = testSql();
  const window = "2011-05-01T00:00:00Z";
  await sql`delete from public.api_logs where created_at >= ${window} and created_at < '2011-05-09'`;
  await sql`insert into public.api_logs (tenant_slug, service, event, status, error_type, response_time, data,
      created_at)
    select ${slug}, 'whatsapp', case when g % 5 = 0 then 'connection.update' else 'connect' end,
      case when g % 7 = 0 then 'error' else 'success' end, case when g % 14 = 0 then 'timeout' end, (g * 37) % 2000,
      case when g % 5 = 0 then jsonb_build_object('state', case when g % 10 = 0 then 'open' else 'close' end) end,
      ${window}::timestamptz + g * interval '17 minutes'
    from generate_series(0, 580) g`;
  const [{ r }] = await sql`select maintenance.weekly_report(7, '2011-05-08T00:00:00Z') as r`;
  return r;
}

Deno.test("the weekly report and cleanup-logs give the same answers on the partitioned layout as on the plain one", async () => {
  assert.equal(await layout(), false);
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  const deps = testDeps({ now: () => now, env: { LOG_RETENTION_DAYS: "30" } });
  const run = async () => {
    const r = await runJob(deps, cleanupLogs, { input: cleanupLogs.input.parse({}), trigger: "test" });
    assert.equal(r.status, "ok", JSON.stringify(r.report));
    return r.report;
  };
  const reportSlug = uniqueSlug("pcr");

  // plain
  const plainReport = await weekly(reportSlug);
  const [a, qa] = [uniqueSlug("pcp"), uniqueSlug("pcq")];
  await seedRetention(a, qa, now);
  await run();
  const plainLeft = await leftOf([a, qa], now);

  // partitioned: the same rows again, under other tenants' names
  const partReport0 = await weekly(reportSlug);
  const [b, qb] = [uniqueSlug("pcp"), uniqueSlug("pcq")];
  await seedRetention(b, qb, now);
  await convert(true);
  try {
    const partReport = await weekly(reportSlug);
    assert.deepEqual(partReport0, plainReport, "the report's data reseeded the same");
    assert.deepEqual(partReport, plainReport, "the weekly report is the same on both layouts");
    const report = await run();
    const api = (report.tables as { table: string; partitionsDropped?: number }[])
      .find((t) => t.table === "public.api_logs")!;
    assert.ok((api.partitionsDropped ?? 0) >= 1, `whole days dropped: ${JSON.stringify(api)}`);
    const partLeft = await leftOf([b, qb], now);
    assert.deepEqual(partLeft, plainLeft, "cleanup-logs keeps the same rows on both layouts");
    assert.equal(
      plainLeft.length,
      4,
      `the three recent rows and the quiet tenant's latest state: ${JSON.stringify(plainLeft)}`,
    );
  } finally {
    await convert(false);
  }
  await testSql()`delete from public.api_logs where tenant_slug = any(${[a, qa, b, qb, reportSlug]})`;
});
