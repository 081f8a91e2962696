// Rollups under concurrent writers: a writer that commits after a later one (out of id order) is never missed and
// never counted twice, because the watermark stops at the hour of the oldest transaction still writing.
import assert from "node:assert/strict";
import { testSql, uniqueSlug } from "./_helpers.ts";

Deno.test("rollups: two writers committing out of id order are each counted once", async () => {
  const sql = testSql();
  const slug = uniqueSlug("roll");
  const [saved] = await sql`select watermark from maintenance.api_logs_rollup_state`;
  const a = await sql.reserve();
  try {
    await a`begin`;
    const [first] = await a`insert into public.api_logs (tenant_slug, service, event, status, response_time)
      values (${slug}, 'whatsapp', 'send', 'success', 11) returning id`;
    const [second] = await sql`insert into public.api_logs (tenant_slug, service, event, status, response_time)
      values (${slug}, 'whatsapp', 'send', 'success', 22) returning id`;
    assert.ok(Number(first.id) < Number(second.id), "the open writer holds the lower id");
    // every hour up to two hours from now counts as closed, but writer A is still open
    const [r1] =
      await sql`select watermark from maintenance.refresh_api_logs_rollup('3 hours', now() + interval '2 hours')`;
    const [open] = await a`select date_trunc('hour', now()) as h`;
    assert.ok(new Date(r1.watermark) <= new Date(open.h), "the watermark stops at the open writer's hour");
    await a`commit`;
    const [r2] =
      await sql`select watermark from maintenance.refresh_api_logs_rollup('3 hours', now() + interval '2 hours')`;
    assert.ok(new Date(r2.watermark) > new Date(open.h), "after its commit the watermark passes that hour");
    const [got] = await sql`select coalesce(sum(total), 0)::int as n, coalesce(sum(rt_sum), 0)::int as rt
      from maintenance.api_logs_hourly where tenant_slug = ${slug}`;
    assert.deepEqual({ n: got.n, rt: got.rt }, { n: 2, rt: 33 }, "both rows, each once");
  } finally {
    await a`rollback`.catch(() => {});
    a.release();
    await sql`delete from public.api_logs where tenant_slug = ${slug}`;
    await sql`delete from maintenance.api_logs_hourly where hour >= date_trunc('hour', now()) - interval '3 hours'`;
    await sql`update maintenance.api_logs_rollup_state set watermark = ${saved.watermark}`;
  }
});
