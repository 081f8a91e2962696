// The status page over plain HTTP: who may read it (secret key, read-only token, nobody else), bad query strings,
// the headers that keep it private and script-free, and the HTML it answers for the fixture.
import assert from "node:assert/strict";
import { stack, testDeps } from "./_helpers.ts";
import { createStatusFixture, XSS_NAME } from "./status_page_fixture.ts";
import { createStatusPageApp } from "../shared/status_page/app.ts";
import { createJobApp } from "../shared/jobs/app.ts";
import { healthCheck } from "../shared/jobs/health_check.ts";

const pageUrl = (query = "", path = "") => `${stack().functionsUrl}/status-page${path}${query}`;

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

Deno.test("status-page answers 401 without the secret key or a token", async (t) => {
  const s = stack();
  for (
    const [name, url, headers] of [
      ["no key", pageUrl(), {}],
      ["wrong apikey", pageUrl(), { apikey: "sb_secret_wrong" }],
      ["wrong token", pageUrl("?token=nope"), {}],
      ["publishable key", pageUrl(), { apikey: s.publishableKey }],
      ["publishable key as token", pageUrl(`?token=${encodeURIComponent(s.publishableKey ?? "x")}`), {}],
    ] as Array<[string, string, Record<string, string>]>
  ) {
    await t.step(name, async () => {
      const res = await get(url, headers);
      assert.equal(res.status, 401);
      assert.equal(JSON.parse(res.text).error.code, "unauthorized");
      assert.doesNotMatch(res.text, /<html/);
    });
  }
});

Deno.test("status-page accepts the secret key as apikey, Bearer and ?token=, with or without the trailing slash", async () => {
  const key = stack().secretKey;
  for (
    const [url, headers] of [
      [pageUrl(), { apikey: key }],
      [pageUrl("", "/"), { authorization: `Bearer ${key}` }],
      [pageUrl(`?token=${encodeURIComponent(key)}`), {}],
      [pageUrl(`?token=${encodeURIComponent(key)}`, "/"), {}],
    ] as Array<[string, Record<string, string>]>
  ) {
    const res = await get(url, headers);
    assert.equal(res.status, 200, `${url}: ${res.text.slice(0, 200)}`);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    assert.match(res.text, /^<!doctype html>/);
  }
});

Deno.test("status-page keeps the page private and script-free through its headers", async () => {
  const res = await get(pageUrl(), { apikey: stack().secretKey });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(res.headers.get("referrer-policy"), "no-referrer");
  const csp = res.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'none'/);
  assert.doesNotMatch(csp, /script-src/);
  assert.doesNotMatch(res.text, /<script/i, "the page itself carries no script");
  assert.doesNotMatch(res.text, /\b(src|href)="https?:/i, "no external asset");
});

Deno.test("status-page rejects a bad query string with a 400 naming the parameter", async () => {
  const key = stack().secretKey;
  for (const [query, field] of [["?limit=0", "limit"], ["?limit=abc", "limit"], [`?q=${"x".repeat(101)}`, "q"]]) {
    const res = await get(pageUrl(query), { apikey: key });
    assert.equal(res.status, 400, query);
    const body = JSON.parse(res.text);
    assert.equal(body.error.details[0].field, field);
    assert.match(body.error.message, new RegExp(`'${field}'`));
  }
});

Deno.test("status-page opens with the read-only token, which opens nothing else", async () => {
  const token = `ro_${crypto.randomUUID()}`;
  const deps = testDeps({ env: { STATUS_PAGE_TOKEN: token } });
  const app = createStatusPageApp(deps);
  for (
    const [path, headers] of [
      [`/status-page?token=${token}`, {}],
      ["/status-page", { "x-status-token": token }],
      ["/status-page/", { authorization: `Bearer ${token}` }],
    ] as Array<[string, Record<string, string>]>
  ) {
    const res = await app.request(path, { headers });
    assert.equal(res.status, 200, path);
    await res.body?.cancel();
  }
  const wrong = await app.request(`/status-page?token=${token}x`);
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
  const job = await createJobApp(healthCheck, deps).request("/health-check", {
    method: "POST",
    headers: { apikey: token, "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(job.status, 401, "the status page token cannot run a job");
  await job.body?.cancel();
});

Deno.test("status-page renders the fixture's tenants, bars and alert, and escapes a tenant name", async () => {
  const fx = await createStatusFixture();
  try {
    const res = await get(pageUrl(`?q=${fx.prefix}`), { apikey: stack().secretKey });
    assert.equal(res.status, 200);
    const html = res.text;
    const row = (slug: string) => {
      const m = html.match(
        new RegExp(`<tr\\s+class="tenant"\\s+data-slug="${slug}"\\s+data-state="(\\w+)"\\s*>([\\s\\S]*?)</tr>`),
      );
      assert.ok(m, `row of ${slug}`);
      return { state: m[1], body: m[2] };
    };
    const rects = (body: string, window: string) => {
      const svg = body.match(new RegExp(`<svg\\s+class="bar"\\s+data-window="${window}"[\\s\\S]*?</svg>`))?.[0] ?? "";
      return [...svg.matchAll(/data-state="(\w+)"\s+x="(\d+)"\s+y="0"\s+width="(\d+)"/g)].map((
        m,
      ) => [m[1], Number(m[2]), Number(m[3])]);
    };
    assert.equal(row(fx.slugs.ok).state, "healthy");
    assert.equal(row(fx.slugs.deg).state, "degraded");
    assert.equal(row(fx.slugs.down).state, "unhealthy");
    assert.deepEqual(rects(row(fx.slugs.deg).body, "24h"), [["healthy", 0, 71], ["degraded", 71, 25]]);
    assert.deepEqual(rects(row(fx.slugs.down).body, "7d"), [["unknown", 0, 95], ["healthy", 95, 60], [
      "unhealthy",
      155,
      13,
    ]]);
    // worst first
    const order = [...html.matchAll(/<tr\s+class="tenant"\s+data-slug="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(order.slice(0, 2), [fx.slugs.down, fx.slugs.deg]);
    assert.match(html, new RegExp(`data-fingerprint="instance_missing:${fx.slugs.down}"`));
    assert.match(html, new RegExp(fx.evolutionVersion.replaceAll(".", "\\.")));
    // the injected name is text
    assert.ok(!html.includes(XSS_NAME), "the raw name never reaches the page");
    assert.ok(!html.includes("<script>window.__xss"), "no injected script element");
    assert.ok(html.includes("&lt;script&gt;window.__xss = 1&lt;/script&gt;&lt;img src=x onerror=&quot;"));
    assert.match(html, /Evil &amp; &quot;Co&quot;/);
  } finally {
    await fx.cleanup();
  }
});
