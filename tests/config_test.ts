// Configuration: parsed once, a missing required value is a start-up error that names it.
import assert from "node:assert/strict";
import { loadConfig, normalizeBaseUrl } from "../shared/config.ts";
import { ConfigError } from "../shared/errors.ts";

const complete = {
  SUPABASE_DB_URL: "postgresql://postgres:postgres@127.0.0.1:5432/postgres",
  SUPABASE_SECRET_KEYS: '{"default":"sb_secret_0123456789abcdef"}',
  EVOLUTION_API_URL: "http://127.0.0.1:8080/",
  EVOLUTION_API_KEY: "evo-key",
  WEBHOOK_BASE_URL: "https://app.example/fn/",
  WEBHOOK_SECRET: "0123456789abcdef0123",
};

Deno.test("loadConfig() applies defaults and trims trailing slashes", () => {
  const c = loadConfig(complete);
  assert.equal(c.instancePrefix, "revalya-");
  assert.equal(c.logRetentionDays, 30);
  assert.equal(c.evolution.url, "http://127.0.0.1:8080");
  assert.equal(c.webhookBaseUrl, "https://app.example/fn");
  assert.equal(c.slackWebhookUrl, undefined);
  assert.equal(c.email, undefined);
});

Deno.test("loadConfig() trims SUPABASE_URL too; normalizeBaseUrl() does the same for URLs from elsewhere", () => {
  assert.equal(
    loadConfig({ ...complete, SUPABASE_URL: "https://abc.supabase.co//" }).supabaseUrl,
    "https://abc.supabase.co",
  );
  assert.equal(loadConfig(complete).supabaseUrl, undefined);
  assert.equal(normalizeBaseUrl("http://evo.test:8080/api///"), "http://evo.test:8080/api");
  assert.equal(normalizeBaseUrl("http://evo.test"), "http://evo.test");
});

Deno.test("loadConfig() reads the secret keys as Supabase gives them: a JSON set, the singular key, the legacy key", async (t) => {
  const { SUPABASE_SECRET_KEYS: _, ...rest } = complete;
  await t.step("SUPABASE_SECRET_KEYS: every named key, the default one presented by the bundle", () => {
    const c = loadConfig({ ...rest, SUPABASE_SECRET_KEYS: '{"cron":"sb_secret_b","default":"sb_secret_a"}' });
    assert.deepEqual(c.secretKeys, { cron: "sb_secret_b", default: "sb_secret_a" });
    assert.equal(c.secretKey, "sb_secret_a");
  });
  await t.step("SUPABASE_SECRET_KEY alone (self-hosted)", () => {
    const c = loadConfig({ ...rest, SUPABASE_SECRET_KEY: "sb_secret_self" });
    assert.deepEqual(c.secretKeys, { secret_key: "sb_secret_self" });
    assert.equal(c.secretKey, "sb_secret_self");
  });
  await t.step("the legacy SUPABASE_SERVICE_ROLE_KEY joins the set while it is set", () => {
    const c = loadConfig({ ...complete, SUPABASE_SERVICE_ROLE_KEY: "eyJlegacy.service.role" });
    assert.deepEqual(c.secretKeys, { default: "sb_secret_0123456789abcdef", service_role: "eyJlegacy.service.role" });
    assert.equal(c.secretKey, "sb_secret_0123456789abcdef");
  });
  await t.step("no key at all is a start-up error naming SUPABASE_SECRET_KEYS", () => {
    assert.throws(() => loadConfig(rest), /missing SUPABASE_SECRET_KEYS/);
    assert.throws(() => loadConfig({ ...rest, SUPABASE_SECRET_KEYS: "{}" }), /missing SUPABASE_SECRET_KEYS/);
  });
  await t.step("a set that is not a JSON object of strings is named as invalid", () => {
    for (const bad of ["{nope", '["sb_secret_a"]', '{"default":5}', '{"default":""}']) {
      assert.throws(() => loadConfig({ ...rest, SUPABASE_SECRET_KEYS: bad }), /invalid SUPABASE_SECRET_KEYS/, bad);
    }
  });
});

Deno.test("loadConfig() names every missing variable", () => {
  const { EVOLUTION_API_KEY: _a, WEBHOOK_SECRET: _b, ...rest } = complete;
  assert.throws(() => loadConfig(rest), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.deepEqual(e.missing.sort(), ["EVOLUTION_API_KEY", "WEBHOOK_SECRET"]);
    assert.match(e.message, /missing EVOLUTION_API_KEY, WEBHOOK_SECRET|missing WEBHOOK_SECRET, EVOLUTION_API_KEY/);
    return true;
  });
});

Deno.test("loadConfig() treats an empty value as missing and names an invalid one", () => {
  assert.throws(() => loadConfig({ ...complete, EVOLUTION_API_URL: "" }), /missing EVOLUTION_API_URL/);
  assert.throws(() => loadConfig({ ...complete, LOG_RETENTION_DAYS: "zero" }), /invalid LOG_RETENTION_DAYS/);
  assert.throws(() => loadConfig({ ...complete, INSTANCE_PREFIX: "Bad Prefix" }), /invalid INSTANCE_PREFIX/);
});

Deno.test("loadConfig() refuses email alerts without an email API", () => {
  assert.throws(() => loadConfig({ ...complete, ALERT_EMAIL_TO: "ops@example.com" }), /EMAIL_API_URL/);
});
