// Every function exists, answers JSON, refuses a missing or wrong key, and rejects bad input with a 4xx.
import assert from "node:assert/strict";
import { callFunction, stack, testSql } from "./_helpers.ts";
import { JOBS as REGISTRY } from "../shared/jobs/mod.ts";

const JOBS = REGISTRY.map((j) => j.name);

Deno.test("scheduled functions answer the run response and store it in job_runs", async () => {
  for (const job of JOBS) {
    const res = await callFunction(job, { trigger: "test" });
    assert.equal(res.status, 200, res.text);
    for (const k of ["job", "runId", "status", "startedAt", "finishedAt", "durationMs", "dryRun", "report"]) {
      assert.ok(k in res.json, `${job} response has ${k}`);
    }
    const [row] = await testSql()`select job, status, trigger from maintenance.job_runs where id = ${
      String(res.json.runId)
    }`;
    assert.deepEqual({ ...row }, { job, status: res.json.status, trigger: "test" });
  }
});

Deno.test("functions refuse requests without the secret key", async (t) => {
  for (const fn of [...JOBS, "whatsapp-ops", "metrics"]) {
    await t.step(fn, async () => {
      const none = await callFunction(fn, {}, { key: null, path: fn === "whatsapp-ops" ? "/diagnose" : "" });
      assert.equal(none.status, 401);
      assert.equal((none.json.error as { code: string }).code, "unauthorized");
      const wrong = await callFunction(fn, {}, {
        key: "sb_secret_wrong",
        path: fn === "whatsapp-ops" ? "/diagnose" : "",
      });
      assert.equal(wrong.status, 401);
      const anon = await callFunction(fn, {}, {
        key: stack().publishableKey,
        path: fn === "whatsapp-ops" ? "/diagnose" : "",
      });
      assert.equal(anon.status, 401);
    });
  }
});

Deno.test("job functions reject unknown fields and wrong types with a 400 naming the field", async () => {
  const extra = await callFunction("health-check", { bogus: 1 });
  assert.equal(extra.status, 400);
  assert.match(String((extra.json.error as { message: string }).message), /bogus/);
  const wrongType = await callFunction("health-check", { trigger: 42 });
  assert.equal(wrongType.status, 400);
  assert.match(String((wrongType.json.error as { message: string }).message), /trigger/);
  const s = stack();
  const invalid = await fetch(`${s.functionsUrl}/health-check`, {
    method: "POST",
    headers: { apikey: s.secretKey, "content-type": "application/json" },
    body: "{not json",
  });
  assert.equal(invalid.status, 400);
  assert.equal((await invalid.json()).error.code, "invalid_json");
});
