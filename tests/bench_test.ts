// The benchmarks' harness at a tiny size on the test stack, so CI catches a broken bench: data generators (SQL),
// every benchmark's seed and ours, the JSON shape, and the seed/ours agreement. No timing is asserted (speed
// lives in `npm run bench`). The data is generated in 2001 and only the bench's own tenants are touched.
import assert from "node:assert/strict";
import { renderTable, runBenchmarks } from "../bench/main.ts";
import type { BenchContext } from "../bench/harness.ts";
import { stack, testSql } from "./_helpers.ts";

// deno-lint-ignore no-explicit-any
type Section = Record<string, any>;

Deno.test("runBenchmarks() at a tiny size gives every figure, and the seed's report agrees with ours", async () => {
  const sql = testSql();
  const ctx: BenchContext = {
    info: stack(),
    sql,
    until: new Date("2001-03-01T00:00:00Z"),
    exclusive: false,
    log: () => {},
  };
  try {
    const result = await runBenchmarks(ctx, {
      health: { sizes: [10], latencyMs: 5 },
      data: { tenants: 20, recentRows: 2_000 },
      webhook: { events: 30, tenants: 5, concurrency: 4 },
      scheduled: { latencyMs: 300, runs: 1 },
    }, { fullSize: false });

    for (const key of ["healthCheck", "weeklyReport", "purge", "webhook", "scheduled"]) {
      const s = result[key] as Section;
      assert.ok(s && !s.error, `${key}: ${JSON.stringify(s)}`);
      for (const field of ["size", "ours", "seed", "ratio", "targets"]) assert.ok(field in s, `${key}.${field}`);
      assert.ok(Array.isArray(s.targets) && s.targets.length > 0, `${key}.targets`);
    }

    const health = result.healthCheck as Section;
    assert.equal(health.size, 10);
    assert.equal(health.sizes[0].seedEstimated, false);
    // the seed asks Evolution once per tenant; ours lists every instance in one call
    assert.equal(health.evolutionCalls.seed.connectionState, 10);
    assert.equal(health.evolutionCalls.ours.fetchInstances, 1);
    assert.ok(health.ours > 0 && health.seed > 0 && health.ratio > 0);

    const weekly = result.weeklyReport as Section;
    assert.deepEqual(weekly.mismatches, []);
    assert.equal(weekly.agree, true);
    assert.equal(weekly.size.rows, 2_000);
    assert.ok(weekly.figures.totalRequests > 0 && weekly.figures.totalConnections > 0);

    const purge = result.purge as Section;
    assert.equal(purge.size.rows, 4_000);
    assert.ok(purge.seed.deleted > 0);
    // ours deletes what the seed deletes, except each tenant's latest state, which it keeps
    assert.equal(purge.ours.deleted + purge.keptLatestStates, purge.seed.deleted);
    assert.ok(purge.writer.ours.inserts > 0 && purge.writer.seed.inserts > 0);
    // the retention comparison: WAL measured for each; the partitioned run converts the whole table, so only on the
    // bench's own stack
    assert.ok(
      purge.retention.singleDelete.walMB > 0 && purge.retention.batched.walMB > 0,
      JSON.stringify(purge.retention),
    );
    assert.equal(purge.retention.partitioned, null);

    const webhook = result.webhook as Section;
    assert.equal(webhook.seed, null);
    assert.ok(webhook.ratio > 0);
    assert.equal(webhook.ours.answered200, 30);
    assert.equal(webhook.ours.lost, 0);
    // the same events to the simplest receiver (one plain insert each), side by side
    assert.equal(webhook.baseline.answered200, 30);
    assert.equal(webhook.baseline.lost, 0);

    const scheduled = result.scheduled as Section;
    assert.deepEqual(scheduled.statuses, { ours: [202], seed: [200] }, "ours answered 202, the synchronous way 200");
    assert.ok(scheduled.seed >= 600, `behind a synchronous call the request waited for the run (${scheduled.seed} ms)`);

    const table = renderTable(result);
    for (
      const name of [
        "health-check",
        "weekly report",
        "retention purge",
        "webhook ingestion",
        "request behind a scheduled call",
        "agree: true",
      ]
    ) {
      assert.ok(table.includes(name), `table lacks ${name}:\n${table}`);
    }
  } finally {
    await sql`delete from maintenance.job_runs where trigger = 'bench'`;
  }
});
