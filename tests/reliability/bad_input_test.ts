// The bad-input matrix: every function and route of the test stack, over HTTP, fed missing / extra / wrong-typed
// fields, hostile slugs, huge strings, empty / 5 MB / invalid / non-UTF-8 bodies, wrong content types and SQL
// metacharacters. Every case must answer a 4xx whose message names the field (or the problem), never a 5xx, and leave
// the row counts of tenants, tenant_integrations, api_logs, actions_audit and job_runs as they were.
import assert from "node:assert/strict";
import { createTenant, stack, testSql } from "../_helpers.ts";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../../shared/naming.ts";
import { assertRejected, raw, rowCounts } from "./_matrix.ts";
import { JOBS as REGISTRY } from "../../shared/jobs/mod.ts";
import { BAD_SLUGS, bodyCases, type Case, field, jobCases, slugCases } from "./_cases.ts";

/** Every job of the registry with its cases. */
const JOB_CASES: Record<string, Case[]> = Object.fromEntries(REGISTRY.map((def) => [def.name, jobCases(def)]));

async function runCase(fn: string, c: Case, slugs: string[]) {
  const before = await rowCounts(slugs);
  const headers: Record<string, string> = { ...(c.headers ?? {}) };
  const type = c.type === undefined ? "application/json" : c.type;
  if (type) headers["content-type"] = type;
  let body: BodyInit | null | undefined = c.body;
  if (body === undefined) body = c.json === undefined ? null : JSON.stringify(c.json);
  if (c.method === "GET") body = null;
  const r = await raw(fn, { method: c.method ?? "POST", path: c.path, body, headers });
  assertRejected(r, { status: c.status, names: c.names }, `${fn} ${c.name}`);
  const after = await rowCounts(slugs);
  const expected = { ...before };
  for (const [k, d] of Object.entries(c.delta ?? {})) expected[k] += d;
  assert.deepEqual(after, expected, `${fn} ${c.name}: row counts`);
}

for (const [fn, cases] of Object.entries(JOB_CASES)) {
  Deno.test(`${fn} answers every bad input with a 4xx naming the field and changes no row`, async (t) => {
    for (const c of cases) await t.step(c.name, () => runCase(fn, c, []));
  });
}

/** The hostile values of a server's `name` (a slug too), around the other fields of a valid body. */
function serverNameCases(rest: Record<string, unknown> = {}): Case[] {
  return [
    ...BAD_SLUGS.map(([n, v]) => ({ ...field("name", v, rest), name: `'name' ${n}` })),
    field("name", undefined, rest),
    field("name", 42, rest),
  ];
}

Deno.test("whatsapp-ops answers every bad input on every route with a 4xx naming the field and changes no row", async (t) => {
  const { slug } = await createTenant({ prefix: "bi-ops" });
  const routes: Record<string, { base: Record<string, unknown>; extra: Case[] }> = {
    diagnose: {
      base: { slug },
      extra: [
        field("windowHours", 0, { slug }),
        field("windowHours", "24", { slug }),
        field("windowHours", 1e9, { slug }),
      ],
    },
    fix: { base: { slug, apply: false }, extra: [field("apply", "true", { slug }), field("apply", null, { slug })] },
    reconnect: { base: { slug }, extra: [] },
    reset: {
      base: { slug, confirm: slug },
      extra: [
        field("confirm", "x".repeat(10_000), { slug }),
        field("confirm", 42, { slug }),
        field("apply", "true", { slug, confirm: slug }),
        {
          // a refused reset of an existing tenant is audited on purpose (someone tried): one `refused` row, no other
          name: "'confirm' with SQL metacharacters (refused, audited)",
          json: { slug, confirm: "'; drop table tenants; --", apply: true },
          status: 400,
          names: /'confirm'/,
          delta: { actions_audit: 1 },
        },
        {
          name: "'confirm' missing (refused, audited)",
          json: { slug, apply: true },
          status: 400,
          names: /'confirm'/,
          delta: { actions_audit: 1 },
        },
        {
          name: "'confirm' a Cyrillic look-alike of the slug (refused, audited)",
          json: { slug, confirm: slug.replace("o", "\u043e"), apply: true },
          status: 400,
          names: /'confirm'/,
          delta: { actions_audit: 1 },
        },
      ],
    },
    migrate: {
      base: { slug, apiUrl: "http://127.0.0.1:9/", apiKey: "k" },
      extra: [
        field("apiUrl", "ftp://evil.example/", { slug, apiKey: "k" }),
        field("apiUrl", "javascript:alert(1)", { slug, apiKey: "k" }),
        field("apiUrl", `http://${"a".repeat(10_000)}.example/`, { slug, apiKey: "k" }),
        field("apiUrl", "'; drop table tenants; --", { slug, apiKey: "k" }),
        field("apiUrl", undefined, { slug, apiKey: "k" }),
        field("apiKey", "", { slug, apiUrl: "http://127.0.0.1:9/" }),
        field("apiKey", "k".repeat(10_000), { slug, apiUrl: "http://127.0.0.1:9/" }),
        field("apiKey", 42, { slug, apiUrl: "http://127.0.0.1:9/" }),
        field("apply", "yes", { slug, apiUrl: "http://127.0.0.1:9/", apiKey: "k" }),
      ],
    },
    status: {
      base: { slug },
      extra: [field("limit", 0), field("limit", "20"), field("limit", 10_000), field("limit", 1.5)],
    },
    "servers/list": { base: {}, extra: [] },
    "servers/register": {
      base: { name: "bi-srv", url: "http://127.0.0.1:9", key: "k" },
      extra: [
        ...serverNameCases({ url: "http://127.0.0.1:9", key: "k" }),
        field("name", "default", { url: "http://127.0.0.1:9", key: "k" }),
        field("url", "ftp://evil.example/", { name: "bi-srv", key: "k" }),
        field("url", "http://user:password@127.0.0.1:9", { name: "bi-srv", key: "k" }),
        field("url", "http://127.0.0.1:9/?apikey=k", { name: "bi-srv", key: "k" }),
        field("url", "'; drop table tenants; --", { name: "bi-srv", key: "k" }),
        field("url", undefined, { name: "bi-srv", key: "k" }),
        field("key", "", { name: "bi-srv", url: "http://127.0.0.1:9" }),
        field("key", "k".repeat(10_000), { name: "bi-srv", url: "http://127.0.0.1:9" }),
        field("capacity", 0, { name: "bi-srv", url: "http://127.0.0.1:9", key: "k" }),
        field("capacity", "10", { name: "bi-srv", url: "http://127.0.0.1:9", key: "k" }),
        field("capacity", 1.5, { name: "bi-srv", url: "http://127.0.0.1:9", key: "k" }),
      ],
    },
    ...Object.fromEntries(["enable", "drain", "undrain"].map((v) => [`servers/${v}`, {
      base: { name: "bi-srv" },
      extra: serverNameCases(),
    }])),
    "servers/disable": {
      base: { name: "bi-srv" },
      extra: [...serverNameCases(), field("apply", "true", { name: "bi-srv" })],
    },
    "servers/remove": {
      base: { name: "bi-srv", confirm: "bi-srv" },
      extra: [
        ...serverNameCases({ confirm: "bi-srv" }),
        field("confirm", 42, { name: "bi-srv" }),
        field("confirm", "x".repeat(10_000), { name: "bi-srv" }),
        field("apply", "yes", { name: "bi-srv", confirm: "bi-srv" }),
      ],
    },
  };
  try {
    for (const [route, { base, extra }] of Object.entries(routes)) {
      // `/status` takes an optional slug: a missing one is the all-tenants view, not bad input; servers have names
      const slugs = route.startsWith("servers/")
        ? []
        : slugCases(base).filter((c) => route !== "status" || !/slug missing/.test(c.name));
      const cases = [...bodyCases(base), ...slugs, ...extra];
      for (const c of cases) {
        await t.step(`/${route} ${c.name}`, () => runCase("whatsapp-ops", { ...c, path: `/${route}` }, [slug]));
      }
    }
    await t.step(
      "unknown route /drop",
      () =>
        runCase("whatsapp-ops", {
          name: "unknown route",
          path: "/drop",
          json: { slug },
          status: 404,
          names: /No route/,
        }, [
          slug,
        ]),
    );
  } finally {
    await testSql()`delete from public.tenants where slug = ${slug}`;
    await testSql()`delete from maintenance.actions_audit where tenant_slug = ${slug}`;
  }
});

Deno.test("whatsapp-webhook answers every bad path and body with a 4xx naming the problem and changes no row", async (t) => {
  const { slug } = await createTenant({ prefix: "bi-wh" });
  const token = await webhookToken(slug, stack().webhookSecret);
  const good = { event: "connection.update", instance: `revalya-${slug}`, data: { state: "open" } };
  const hook = (s: string) => `/api/whatsapp/webhook/${s}`;
  const withToken = { [WEBHOOK_TOKEN_HEADER]: token };
  const cases: Case[] = [
    // the slug in the path (URL-encoded as a client would send it)
    ...BAD_SLUGS.filter(([, v]) => v !== "").map(([n, v]): Case => ({
      name: `path slug ${n}`,
      path: hook(encodeURIComponent(v)),
      json: good,
      headers: withToken,
      names: /'slug'|No route/,
    })),
    { name: "path slug '..%2Fx'", path: hook("..%2Fx"), json: good, headers: withToken, status: 400, names: /'slug'/ },
    {
      name: "path '../x' (normalised away)",
      path: "/api/whatsapp/webhook/../x",
      json: good,
      headers: withToken,
      status: 404,
      names: /No route/,
    },
    {
      name: "bad event suffix",
      path: hook(`${slug}/..%2F..`),
      json: good,
      headers: withToken,
      status: 400,
      names: /'suffix'/,
    },
    {
      name: "suffix of another event",
      path: hook(`${slug}/qrcode-updated`),
      json: good,
      headers: withToken,
      status: 400,
      names: /'suffix'/,
    },
    {
      name: "unknown route",
      path: "/api/whatsapp/other",
      json: good,
      headers: withToken,
      status: 404,
      names: /No route/,
    },
    // the body, with the tenant's valid token
    ...bodyCases(good).filter((c) =>
      c.name !== "extra field" && c.name !== "extra field with SQL" && c.name !== "GET instead of POST"
    )
      .map((c) => ({ ...c, path: hook(slug), headers: withToken })),
    {
      name: "GET instead of POST",
      method: "GET",
      path: hook(slug),
      headers: withToken,
      status: 404,
      names: /No route GET/,
    },
    {
      name: "empty body ('event' missing)",
      path: hook(slug),
      body: "",
      headers: withToken,
      status: 400,
      names: /'event'/,
    },
    {
      name: "'event' missing",
      path: hook(slug),
      json: { instance: good.instance },
      headers: withToken,
      status: 400,
      names: /'event'/,
    },
    {
      name: "'event' a number",
      path: hook(slug),
      json: { ...good, event: 42 },
      headers: withToken,
      status: 400,
      names: /'event'/,
    },
    {
      name: "'event' with SQL metacharacters",
      path: hook(slug),
      json: { ...good, event: "'; drop table tenants; --" },
      headers: withToken,
      status: 400,
      names: /'event'/,
    },
    {
      name: "'event' 10,000 characters",
      path: hook(slug),
      json: { ...good, event: "e".repeat(10_000) },
      headers: withToken,
      status: 400,
      names: /'event'/,
    },
    {
      name: "'instance' missing",
      path: hook(slug),
      json: { event: good.event },
      headers: withToken,
      status: 400,
      names: /'instance'/,
    },
    {
      name: "'instance' 10,000 characters",
      path: hook(slug),
      json: { ...good, instance: "i".repeat(10_000) },
      headers: withToken,
      status: 400,
      names: /'instance'/,
    },
    {
      name: "'instance' an array",
      path: hook(slug),
      json: { ...good, instance: [good.instance] },
      headers: withToken,
      status: 400,
      names: /'instance'/,
    },
    {
      name: "'date_time' a number",
      path: hook(slug),
      json: { ...good, date_time: 1 },
      headers: withToken,
      status: 400,
      names: /'date_time'/,
    },
    {
      name: "'apikey' 10,000 characters",
      path: hook(slug),
      json: { ...good, apikey: "k".repeat(10_000) },
      headers: withToken,
      status: 400,
      names: /'apikey'/,
    },
  ];
  try {
    for (const c of cases) await t.step(c.name, () => runCase("whatsapp-webhook", c, [slug]));
  } finally {
    await testSql()`delete from public.tenants where slug = ${slug}`;
  }
});

Deno.test("status-page answers every bad query string with a 4xx naming the parameter and changes no row", async (t) => {
  const get = (query: string, name: string, names: RegExp, status = 400): Case => ({
    name,
    method: "GET",
    path: `/${query}`,
    type: null,
    status,
    names,
  });
  const cases: Case[] = [
    get("?limit=0", "'limit' = 0", /'limit'/),
    get("?limit=abc", "'limit' not a number", /'limit'/),
    get("?limit=1e9", "'limit' too large", /'limit'/),
    get("?limit=1.5", "'limit' not an integer", /'limit'/),
    get(`?limit=${encodeURIComponent("'; drop table tenants; --")}`, "'limit' with SQL metacharacters", /'limit'/),
    get(`?q=${"q".repeat(10_000)}`, "'q' 10,000 characters", /'q'/),
    get("?q=%00", "'q' holding a NUL byte (a real one: %00)", /'q'.*NUL/),
    get("?q=%ED%A0%80", "'q' holding a lone surrogate's bytes (not UTF-8)", /'q'/),
    get("?%00=1", "a parameter name holding a NUL byte", /query string.*NUL/),
    { name: "POST instead of GET", path: "/", json: {}, status: 404, names: /No route POST/ },
    get("x/../../health-check", "a path outside the page", /No route|not_found|No function/, 404),
  ];
  for (const c of cases) await t.step(c.name, () => runCase("status-page", c, []));
  await t.step(
    "a search with SQL metacharacters, a script, a look-alike or the text '%00' is a search: 200, escaped",
    async () => {
      for (const q of ["'; drop table tenants; --", "<script>alert(1)</script>", "\u0430\u0441me", "%00"]) {
        const before = await rowCounts([]);
        const r = await raw("status-page", { method: "GET", path: `/?q=${encodeURIComponent(q)}` });
        assert.equal(r.status, 200, `${q}: ${r.text.slice(0, 200)}`);
        assert.ok(!r.text.includes("<script>alert(1)</script>"), "the search is escaped in the page");
        assert.deepEqual(await rowCounts([]), before);
      }
    },
  );
});
