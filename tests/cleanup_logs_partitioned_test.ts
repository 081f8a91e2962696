// cleanup-logs on the partitioned layout (opt-in): api_logs converted to day partitions, whole expired days dropped,
// the boundary day purged row-wise, each tenant's latest connection.update kept; then converted back, nothing lost.
import assert from "node:assert/strict";
import { cleanupLogs } from "../shared/jobs/cleanup_logs.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { testDeps, testSql, uniqueSlug } from "./_helpers.ts";

const DAY = 86_400_000;

Deno.test("cleanupLogs() on the partitioned layout drops whole expired days and purges the boundary day row-wise", async () => {
  const sql = testSql();
  const slug = uniqueSlug("clp");
  const quiet = uniqueSlug("clq");
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  const cutoff = new Date(now.getTime() - 30 * DAY);
  const expired = [
    new Date(cutoff.getTime() - 3 * DAY),
    new Date(cutoff.getTime() - 2 * DAY),
    new Date(cutoff.getTime() - 1),
  ];
  const kept = [cutoff, new Date(cutoff.getTime() + 1), now];
  const rows = [...expired, ...kept].map((at) => ({
    tenant_slug: slug,
    service: "evolution",
    event: "x",
    status: "success",
    created_at: at,
  }));
  await sql`insert into public.api_logs ${sql(rows, "tenant_slug", "service", "event", "status", "created_at")}`;
  // a quiet tenant's only connection.update, in a day that is dropped whole: kept however old
  const [{ id: quietId }] = await sql<{ id: string }[]>`
    insert into public.api_logs (tenant_slug, service, event, status, created_at)
    values (${quiet}, 'whatsapp', 'connection.update', 'success', ${new Date(cutoff.getTime() - 3 * DAY)})
    returning id`;
  const [{ n: before }] = await sql<{ n: string }[]>`select count(*) as n from public.api_logs`;
  assert.equal((await sql`select maintenance.api_logs_set_layout(true) as r`)[0].r, "partitioned");
  try {
    const [{ n: after }] = await sql<{ n: string }[]>`select count(*) as n from public.api_logs`;
    assert.equal(after, before, "the conversion keeps every row");
    const deps = testDeps({ now: () => now, env: { LOG_RETENTION_DAYS: "30" } });
    const run = await runJob(deps, cleanupLogs, { input: cleanupLogs.input.parse({}), trigger: "test" });
    assert.equal(run.status, "ok", JSON.stringify(run.report));
    const apiLogs = (run.report.tables as { table: string; partitionsDropped?: number }[])
      .find((t) => t.table === "public.api_logs")!;
    assert.ok((apiLogs.partitionsDropped ?? 0) >= 2, `whole days dropped: ${JSON.stringify(apiLogs)}`);
    const left = await sql<{ created_at: Date }[]>`
      select created_at from public.api_logs where tenant_slug = ${slug} order by created_at`;
    assert.deepEqual(left.map((r) => new Date(r.created_at).toISOString()), kept.map((d) => d.toISOString()));
    const [q] = await sql`select id from public.api_logs where tenant_slug = ${quiet}`;
    assert.equal(String(q?.id), String(quietId), "the quiet tenant's latest connection.update is kept, its id too");
  } finally {
    assert.equal((await sql`select maintenance.api_logs_set_layout(false) as r`)[0].r, "plain");
  }
  const [{ p }] = await sql<{ p: boolean }[]>`select maintenance.api_logs_is_partitioned() as p`;
  assert.equal(p, false, "converted back");
  const [{ n: quietLeft }] = await sql<{ n: string }[]>`
    select count(*) as n from public.api_logs where tenant_slug = ${quiet}`;
  assert.equal(quietLeft, "1", "the kept row survives the way back");
});
