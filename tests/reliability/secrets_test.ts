// The secrets scan (auth matrix, last part): after every other test has run (`npm test` runs this file last, on its
// own), no stored row and no log file of the test stack contains the
// secret keys (`default`, and `cron` which Vault holds), Vault's root key, the Evolution API keys (the stack's and the matrices' simulators and migrate target), the webhook
// secret, any tenant's webhook token, any Evolution instance token, or the application webhooks' signing secret.
import assert from "node:assert/strict";
import { stack, testSql } from "../_helpers.ts";
import {
  APP_WEBHOOK_TEST_SECRET,
  FAULT_SIM_KEY,
  leaks,
  MIGRATE_TARGET_KEY,
  type Secret,
  simControl,
  stackSecrets,
} from "./_matrix.ts";

type Sql = ReturnType<typeof testSql>;
type Finder = (sql: Sql, names: string[], values: string[]) => Promise<Array<{ name: string }>>;

/** Where secrets must never be: each stored column that takes outside data or reports, as the text searched. */
const PLACES: Array<[string, Finder]> = [
  [
    "public.api_logs",
    (sql, n, v) =>
      sql`select s.name from unnest(${n}::text[], ${v}::text[]) as s(name, value) where exists (
      select 1 from public.api_logs x where strpos(x.data::text || coalesce(x.error_type, ''), s.value) > 0)`,
  ],
  [
    "public.tenant_integrations",
    (sql, n, v) =>
      sql`select s.name from unnest(${n}::text[], ${v}::text[]) as s(name, value) where exists (
      select 1 from public.tenant_integrations x where strpos(x.config::text, s.value) > 0)`,
  ],
  [
    "maintenance.job_runs",
    (sql, n, v) =>
      sql`select s.name from unnest(${n}::text[], ${v}::text[]) as s(name, value) where exists (
      select 1 from maintenance.job_runs x
      where strpos(x.input::text || x.report::text || coalesce(x.error, ''), s.value) > 0)`,
  ],
  [
    "maintenance.actions_audit",
    (sql, n, v) =>
      sql`select s.name from unnest(${n}::text[], ${v}::text[]) as s(name, value) where exists (
      select 1 from maintenance.actions_audit x where strpos(to_jsonb(x)::text, s.value) > 0)`,
  ],
  [
    "maintenance.notification_outbox",
    (sql, n, v) =>
      sql`select s.name from unnest(${n}::text[], ${v}::text[]) as s(name, value) where exists (
      select 1 from maintenance.notification_outbox x where strpos(to_jsonb(x)::text, s.value) > 0)`,
  ],
  [
    "maintenance.alerts",
    (sql, n, v) =>
      sql`select s.name from unnest(${n}::text[], ${v}::text[]) as s(name, value) where exists (
      select 1 from maintenance.alerts x where strpos(to_jsonb(x)::text, s.value) > 0)`,
  ],
  [
    "maintenance.tenant_health",
    (sql, n, v) =>
      sql`select s.name from unnest(${n}::text[], ${v}::text[]) as s(name, value) where exists (
      select 1 from maintenance.tenant_health x where strpos(to_jsonb(x)::text, s.value) > 0)`,
  ],
  [
    "maintenance.scheduled_calls",
    (sql, n, v) =>
      sql`select s.name from unnest(${n}::text[], ${v}::text[]) as s(name, value) where exists (
      select 1 from maintenance.scheduled_calls x where strpos(to_jsonb(x)::text, s.value) > 0)`,
  ],
  [
    "maintenance.evolution_servers",
    (sql, n, v) =>
      sql`select s.name from unnest(${n}::text[], ${v}::text[]) as s(name, value) where exists (
      select 1 from maintenance.evolution_servers x where strpos(to_jsonb(x)::text, s.value) > 0)
      or exists (select 1 from maintenance.tenant_servers x where strpos(to_jsonb(x)::text, s.value) > 0)`,
  ],
  [
    "maintenance.settings",
    (sql, n, v) =>
      sql`select s.name from unnest(${n}::text[], ${v}::text[]) as s(name, value) where exists (
      select 1 from maintenance.settings x where strpos(to_jsonb(x)::text, s.value) > 0)`,
  ],
];

async function allSecrets(): Promise<Secret[]> {
  const instances = await simControl<Array<{ name: string; token: string }>>("instances");
  return await stackSecrets([
    { name: "fault simulator key", value: FAULT_SIM_KEY },
    { name: "migrate target key", value: MIGRATE_TARGET_KEY },
    { name: "app webhook secret (APP_WEBHOOK_SECRET)", value: APP_WEBHOOK_TEST_SECRET },
    // the key the secret encodes, which the signatures are made with
    { name: "app webhook signing key", value: atob(APP_WEBHOOK_TEST_SECRET.slice("whsec_".length)) },
    ...instances.map((i) => ({ name: `instance token of '${i.name}'`, value: i.token })),
  ]);
}

Deno.test("no stored row contains a secret", async (t) => {
  const secrets = await allSecrets();
  assert.ok(secrets.length >= 5, "the scan has secrets to look for");
  const names = secrets.map((s) => s.name);
  const values = secrets.map((s) => s.value);
  for (const [table, find] of PLACES) {
    await t.step(table, async () => {
      const found = await find(testSql(), names, values);
      assert.deepEqual(found.map((f) => f.name), [], `${table} holds a secret`);
    });
  }
});

Deno.test("no log file of the test stack contains a secret", async (t) => {
  const secrets = await allSecrets();
  const dir = `${stack().dataDir}/logs`;
  let files = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    files++;
    await t.step(entry.name, async () => {
      const text = await Deno.readTextFile(`${dir}/${entry.name}`);
      assert.deepEqual(leaks(text, secrets), [], `${entry.name} (${text.length} chars) holds a secret`);
    });
  }
  assert.ok(files >= 3, `log files found in ${dir}`);
});
