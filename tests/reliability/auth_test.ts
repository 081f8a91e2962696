// The auth matrix: every function of the test stack, over HTTP, without a key, with wrong keys, with the publishable
// key and with the other secrets of the stack in the key's place → 401 (the webhook by its per-tenant token), with no
// row changed and no secret in the answer; a webhook for tenant A carrying tenant B's instance → 403 and logged.
import assert from "node:assert/strict";
import { JOBS as REGISTRY } from "../../shared/jobs/mod.ts";
import { createTenant, stack, testSql } from "../_helpers.ts";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../../shared/naming.ts";
import { leaks, raw, rowCounts, stackSecrets } from "./_matrix.ts";

interface Target {
  fn: string;
  method: string;
  path?: string;
  body?: string;
}

const JOBS = REGISTRY.map((j) => j.name);
const OPS_ROUTES = [
  "diagnose",
  "fix",
  "reconnect",
  "reset",
  "migrate",
  "status",
  ...["list", "register", "enable", "disable", "drain", "undrain", "remove"].map((v) => `servers/${v}`),
];

/** The credentials that must all be refused, as header sets. */
function wrongCredentials(): Array<[string, Record<string, string>]> {
  const s = stack();
  const random = `sb_secret_${crypto.randomUUID().replaceAll("-", "")}`;
  return [
    ["no key", {}],
    ["empty apikey header", { apikey: "" }],
    ["a wrong key (apikey)", { apikey: random }],
    ["a wrong key (Bearer)", { authorization: `Bearer ${random}` }],
    ["the publishable key (apikey)", { apikey: s.publishableKey }],
    ["the publishable key (Bearer)", { authorization: `Bearer ${s.publishableKey}` }],
    ["the secret key with the Basic scheme", { authorization: `Basic ${s.secretKey}` }],
    ["the secret key minus its last character", { apikey: s.secretKey.slice(0, -1) }],
    ["the secret key plus one character", { apikey: `${s.secretKey}x` }],
    ["the secret key upper-cased", { apikey: s.secretKey.toUpperCase() }],
    ["the Evolution API key", { apikey: s.evolutionApiKey }],
    ["the webhook secret", { apikey: s.webhookSecret }],
    ["the secret key as a query parameter", { "x-query": "1" }],
    ["the secret key in a cookie", { cookie: `apikey=${s.secretKey}` }],
    ["the two secret keys joined", { apikey: `${s.secretKey}${s.cronSecretKey}` }],
    ["the key set's JSON", { apikey: JSON.stringify({ default: s.secretKey, cron: s.cronSecretKey }) }],
  ];
}

function targets(slug: string): Target[] {
  return [
    ...JOBS.map((fn) => ({ fn, method: "POST", body: "{}" })),
    ...OPS_ROUTES.map((r) => ({ fn: "whatsapp-ops", method: "POST", path: `/${r}`, body: JSON.stringify({ slug }) })),
    { fn: "status-page", method: "GET" },
    { fn: "metrics", method: "GET" },
  ];
}

Deno.test("every function refuses a missing, wrong or publishable key with 401 before reading the body, changing nothing", async (t) => {
  const { slug } = await createTenant({ prefix: "au-fn" });
  const secrets = await stackSecrets();
  try {
    for (const target of targets(slug)) {
      for (const [name, headers] of wrongCredentials()) {
        const label = `${target.fn}${target.path ?? ""} with ${name}`;
        await t.step(label, async () => {
          const before = await rowCounts([slug]);
          const path = name.includes("query parameter")
            ? `${target.path ?? ""}?apikey=${stack().secretKey}`
            : target.path;
          const r = await raw(target.fn, {
            method: target.method,
            path,
            key: null,
            headers: { ...headers, ...(target.body ? { "content-type": "application/json" } : {}) },
            body: target.body ?? null,
          });
          assert.equal(r.status, 401, `${label}: ${r.text.slice(0, 200)}`);
          assert.equal(r.json.error?.code, "unauthorized");
          assert.deepEqual(leaks(r.text, secrets), [], `${label}: no secret in the answer`);
          assert.deepEqual(await rowCounts([slug]), before, `${label}: nothing changed`);
        });
      }
      await t.step(`${target.fn}${target.path ?? ""}: no key and an invalid body → 401, not 400`, async () => {
        const r = await raw(target.fn, {
          method: target.method,
          path: target.path,
          key: null,
          headers: { "content-type": "application/json" },
          body: target.method === "GET" ? null : "{not json",
        });
        assert.equal(r.status, 401);
      });
      await t.step(`${target.fn}${target.path ?? ""}: each secret key is accepted (apikey and Bearer)`, async () => {
        // the control row of the matrix: the same request with a right key (`default` or `cron`) is not refused
        const keyed = [stack().secretKey, stack().cronSecretKey].flatMap((key): Record<string, string>[] => [
          { apikey: key },
          { authorization: `Bearer ${key}` },
        ]);
        for (const headers of keyed) {
          const body = target.fn === "orphan-cleanup"
            ? JSON.stringify({ apply: false })
            : target.fn === "isolation-audit"
            ? JSON.stringify({ apply: false, tenants: [slug] })
            : target.fn === "health-check"
            ? JSON.stringify({ tenants: [slug] })
            : target.fn === "cleanup-logs"
            ? JSON.stringify({ dryRun: true })
            : target.fn === "whatsapp-ops" && target.path === "/reset"
            ? JSON.stringify({ slug, confirm: slug, apply: false })
            : target.fn === "whatsapp-ops" && target.path === "/fix"
            ? JSON.stringify({ slug, apply: false })
            : target.fn === "whatsapp-ops" && target.path === "/migrate"
            ? JSON.stringify({ slug, apiUrl: "http://127.0.0.1:9", apiKey: "not-a-real-key-r9" })
            : target.fn === "whatsapp-ops" && target.path === "/reconnect"
            ? null
            : target.body;
          if (body === null) continue; // reconnect acts by default; its auth is covered by the refusals above
          const r = await raw(target.fn, {
            method: target.method,
            path: target.path,
            key: null,
            headers: { ...headers, ...(body ? { "content-type": "application/json" } : {}) },
            body: target.method === "GET" ? null : body,
          });
          assert.notEqual(r.status, 401, `${target.fn}${target.path ?? ""}: ${r.text.slice(0, 200)}`);
          assert.ok(r.status < 500, `${target.fn}${target.path ?? ""}: ${r.status} ${r.text.slice(0, 200)}`);
          assert.deepEqual(leaks(r.text, secrets), [], "no secret in the answer");
        }
      });
    }
  } finally {
    await testSql()`delete from public.tenants where slug = ${slug}`;
  }
});

Deno.test("whatsapp-webhook refuses every wrong token with 401 and stores nothing", async (t) => {
  const a = await createTenant({ prefix: "au-wa" });
  const b = await createTenant({ prefix: "au-wb" });
  const s = stack();
  const tokenA = await webhookToken(a.slug, s.webhookSecret);
  const tokenB = await webhookToken(b.slug, s.webhookSecret);
  const secrets = await stackSecrets();
  const body = JSON.stringify({ event: "connection.update", instance: `revalya-${a.slug}`, data: { state: "open" } });
  const cases: Array<[string, Record<string, string>]> = [
    ["no token", {}],
    ["an empty token", { [WEBHOOK_TOKEN_HEADER]: "" }],
    ["a wrong token", { [WEBHOOK_TOKEN_HEADER]: "0".repeat(64) }],
    ["tenant B's token", { [WEBHOOK_TOKEN_HEADER]: tokenB }],
    ["the token upper-cased", { [WEBHOOK_TOKEN_HEADER]: tokenA.toUpperCase() }],
    ["the token minus its last character", { [WEBHOOK_TOKEN_HEADER]: tokenA.slice(0, -1) }],
    ["the token in the apikey header", { apikey: tokenA }],
    ["the token as Bearer", { authorization: `Bearer ${tokenA}` }],
    ["the secret key as token", { [WEBHOOK_TOKEN_HEADER]: s.secretKey }],
    ["the secret key as apikey", { apikey: s.secretKey }],
    ["the publishable key as token", { [WEBHOOK_TOKEN_HEADER]: s.publishableKey }],
    ["the webhook secret as token", { [WEBHOOK_TOKEN_HEADER]: s.webhookSecret }],
    ["the Evolution API key as token", { [WEBHOOK_TOKEN_HEADER]: s.evolutionApiKey }],
  ];
  try {
    for (const [name, headers] of cases) {
      await t.step(name, async () => {
        const before = await rowCounts([a.slug, b.slug]);
        const r = await raw("whatsapp-webhook", {
          path: `/api/whatsapp/webhook/${a.slug}`,
          key: null,
          headers: { "content-type": "application/json", ...headers },
          body,
        });
        assert.equal(r.status, 401, `${name}: ${r.text.slice(0, 200)}`);
        assert.deepEqual(leaks(r.text, secrets), [], "no secret in the answer");
        assert.deepEqual(await rowCounts([a.slug, b.slug]), before, `${name}: nothing stored`);
      });
    }
    await t.step("control: tenant A's own token is accepted", async () => {
      const r = await raw("whatsapp-webhook", {
        path: `/api/whatsapp/webhook/${a.slug}`,
        key: null,
        headers: { "content-type": "application/json", [WEBHOOK_TOKEN_HEADER]: tokenA },
        body,
      });
      assert.equal(r.status, 200, r.text);
    });
  } finally {
    await testSql()`delete from public.tenants where slug in (${a.slug}, ${b.slug})`;
  }
});

Deno.test("whatsapp-webhook: tenant A's URL and token carrying tenant B's instance → 403, logged on A, nothing for B", async (t) => {
  const a = await createTenant({ prefix: "au-xa" });
  const b = await createTenant({ prefix: "au-xb" });
  const s = stack();
  const tokenA = await webhookToken(a.slug, s.webhookSecret);
  const tokenB = await webhookToken(b.slug, s.webhookSecret);
  const send = (slug: string, token: string, instance: string, event = "connection.update") =>
    raw("whatsapp-webhook", {
      path: `/api/whatsapp/webhook/${slug}`,
      key: null,
      headers: { "content-type": "application/json", [WEBHOOK_TOKEN_HEADER]: token },
      body: JSON.stringify({ event, instance, data: { state: "open" }, date_time: new Date().toISOString() }),
    });
  const logsOf = (slug: string) =>
    testSql()<
      {
        event: string;
        status: string;
        error_type: string | null;
        claimed: string | null;
        claimedEvent: string | null;
      }[]
    >`
      select event, status, error_type, data ->> 'claimedInstance' as claimed, data ->> 'event' as "claimedEvent"
      from public.api_logs where tenant_slug = ${slug} order by id`;
  try {
    for (
      const [name, event] of [["connection.update", "connection.update"], ["messages.upsert", "messages.upsert"], [
        "logout.instance",
        "logout.instance",
      ]]
    ) {
      await t.step(`${name}: 403 and one cross_tenant row on A`, async () => {
        const before = (await logsOf(a.slug)).length;
        const r = await send(a.slug, tokenA, `revalya-${b.slug}`, event);
        assert.equal(r.status, 403, r.text);
        assert.equal(r.json.error?.code, "forbidden");
        const rows = await logsOf(a.slug);
        assert.equal(rows.length, before + 1);
        assert.deepEqual(rows.at(-1), {
          event: "cross_tenant_attempt",
          status: "error",
          error_type: "cross_tenant",
          claimed: `revalya-${b.slug}`,
          claimedEvent: event,
        });
        assert.equal((await logsOf(b.slug)).length, 0, "tenant B gets no event");
      });
    }
    await t.step("an unprefixed or foreign instance on A's URL → 403 as well", async () => {
      for (const instance of ["evil", `other-${a.slug}`, `revalya-${a.slug}-2`, `revalya-${a.slug.toUpperCase()}`]) {
        assert.equal((await send(a.slug, tokenA, instance)).status, 403, instance);
      }
    });
    await t.step(
      "B's token on A's URL with B's instance → 401 (the token is checked before the envelope)",
      async () => {
        assert.equal((await send(a.slug, tokenB, `revalya-${b.slug}`)).status, 401);
      },
    );
    await t.step("the isolation views see the attempts (cross_tenant rows of the last hour)", async () => {
      const [{ n }] = await testSql()<{ n: number }[]>`
        select count(*)::int as n from public.api_logs
        where tenant_slug = ${a.slug} and error_type = 'cross_tenant' and created_at > now() - interval '1 hour'`;
      assert.equal(n, 7);
    });
  } finally {
    await testSql()`delete from public.tenants where slug in (${a.slug}, ${b.slug})`;
  }
});

Deno.test("status-page: wrong tokens are refused, and the secret key given as ?token= is never written into the page", async (t) => {
  const s = stack();
  const secrets = await stackSecrets();
  const cases: Array<[string, string, Record<string, string>]> = [
    ["a wrong ?token=", `?token=${crypto.randomUUID()}`, {}],
    ["the publishable key as ?token=", `?token=${encodeURIComponent(s.publishableKey)}`, {}],
    ["the Evolution API key as ?token=", `?token=${encodeURIComponent(s.evolutionApiKey)}`, {}],
    ["a wrong x-status-token", "", { "x-status-token": "nope-nope-nope" }],
    ["an empty ?token=", "?token=", {}],
    ["the secret key as ?apikey=", `?apikey=${encodeURIComponent(s.secretKey)}`, {}],
  ];
  for (const [name, query, headers] of cases) {
    await t.step(name, async () => {
      const r = await raw("status-page", { method: "GET", path: `/${query}`, key: null, headers });
      assert.equal(r.status, 401, r.text.slice(0, 200));
      assert.deepEqual(leaks(r.text, secrets), []);
    });
  }
  await t.step("?token=<secret key> opens the page, which does not contain the key", async () => {
    const r = await raw("status-page", {
      method: "GET",
      path: `/?token=${encodeURIComponent(s.secretKey)}`,
      key: null,
    });
    assert.equal(r.status, 200);
    assert.match(r.text, /<html/i);
    assert.deepEqual(leaks(r.text, secrets), [], "the page holds a secret");
  });
});
