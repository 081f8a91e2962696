// shared/audit.ts on the real local Postgres: rows as written, secrets redacted, failures must say why.
import assert from "node:assert/strict";
import { listActions, recordAction, redact, REDACTED } from "../shared/audit.ts";
import { testSql, uniqueSlug } from "./_helpers.ts";

Deno.test("redact() replaces key-like fields at any depth and keeps the rest", () => {
  const out = redact({
    apiKey: "k1",
    api_key: "k2",
    nested: { token: "t", headers: { "x-webhook-token": "w" }, list: [{ password: "p", name: "n" }] },
    evolution_api_key_secret_id: "keep-me",
    instance_name: "revalya-acme",
    hash: "h",
    at: new Date("2026-01-01T00:00:00Z"),
  });
  assert.deepEqual(out, {
    apiKey: REDACTED,
    api_key: REDACTED,
    nested: { token: REDACTED, headers: { "x-webhook-token": REDACTED }, list: [{ password: REDACTED, name: "n" }] },
    evolution_api_key_secret_id: "keep-me",
    instance_name: "revalya-acme",
    hash: REDACTED,
    at: "2026-01-01T00:00:00.000Z",
  });
});

Deno.test("recordAction() writes one row with before/after redacted and reads back by tenant and operation", async () => {
  const sql = testSql();
  const slug = uniqueSlug("au");
  const operationId = crypto.randomUUID();
  const id = await recordAction(sql, {
    actor: "test",
    action: "migrate.save_config",
    tenantSlug: slug,
    operationId,
    before: { instance_name: `revalya-${slug}` },
    after: { evolution_api_url: "http://new", apiKey: "super-secret-key-123" },
    result: "ok",
  });
  await recordAction(sql, { actor: "test", action: "migrate.retire_old", tenantSlug: slug, result: "failed" });
  const rows = await listActions(sql, { tenantSlug: slug });
  assert.equal(rows.length, 2);
  assert.equal(rows[1].id, id);
  assert.deepEqual(rows[1].after, { evolution_api_url: "http://new", apiKey: REDACTED });
  assert.equal(rows[0].result, "failed");
  assert.equal(rows[0].error, "(no message)", "a failed action always carries an error text");
  assert.deepEqual((await listActions(sql, { operationId })).map((r) => r.id), [id]);
  const [{ n }] = await sql<{ n: number }[]>`
    select count(*)::int as n from maintenance.actions_audit where after::text like '%super-secret-key-123%'`;
  assert.equal(n, 0, "the secret never reaches the table");
});
