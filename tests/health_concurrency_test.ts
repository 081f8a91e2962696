// Two concurrent calls of the deployed-shape health-check function (the test stack's functions and simulator).
import assert from "node:assert/strict";
import { callFunction, createTenant, stack, testSql } from "./_helpers.ts";

async function simControl(method: string, args: unknown[]) {
  const res = await fetch(`${stack().evolutionUrl}/_control/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(args),
  });
  await res.body?.cancel();
  assert.ok(res.ok, `simulator control ${method} answered ${res.status}`);
}

Deno.test("health-check: two concurrent HTTP calls give one run and one skipped", async () => {
  const { slug } = await createTenant({ prefix: "hc-http" });
  try {
    await simControl("seedInstance", [`revalya-${slug}`, { state: "open" }]);
    await simControl("setLatency", [300]); // the first run holds the lease while the second arrives
    const [a, b] = await Promise.all([
      callFunction("health-check", { tenants: [slug] }),
      callFunction("health-check", { tenants: [slug] }),
    ]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    const statuses = [a.json.status, b.json.status];
    assert.equal(statuses.filter((s) => s === "skipped").length, 1, `one skipped: ${statuses}`);
    const ran = a.json.status === "skipped" ? b.json : a.json;
    const skipped = a.json.status === "skipped" ? a.json : b.json;
    assert.equal(ran.status, "healthy");
    assert.equal((skipped.report as Record<string, unknown>).runningRunId, ran.runId);
    const rows = await testSql()`
      select status from maintenance.job_runs where id = any (${[ran.runId, skipped.runId] as string[]}::uuid[])
      order by status`;
    assert.deepEqual(rows.map((r) => r.status), ["healthy", "skipped"]);
  } finally {
    await simControl("setLatency", [0]);
    // leave no instance behind (an orphan would show up in other jobs' tests)
    const del = await fetch(`${stack().evolutionUrl}/instance/delete/revalya-${slug}`, {
      method: "DELETE",
      headers: { apikey: stack().evolutionApiKey },
    });
    await del.body?.cancel();
    await testSql()`delete from public.tenants where slug = ${slug}`;
  }
});
