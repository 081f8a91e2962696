// The status page's other formats over plain HTTP: ?format=svg (the board as a standalone SVG document, for
// *.supabase.co where HTML is served as text/plain) and ?format=json (versioned, documented in docs/STATUS_PAGE.md).
// Who may read them (same check as the HTML page), their content types and headers, a bad format, the JSON's exact
// key sets, the SVG parsed by a strict XML parser (no script of any kind, hostile values escaped, the same bars as
// the HTML page), the links it writes (the read-only token only, never the secret key), the limit and empty states.
import assert from "node:assert/strict";
import { stack, testDeps, testSql } from "./_helpers.ts";
import { createStatusFixture, type StatusFixture, XSS_NAME } from "./status_page_fixture.ts";
import { elements, findAll, findOne, hasClass, parseXml, textOf, type XmlElement } from "./_xml.ts";
import { createStatusPageApp } from "../shared/status_page/app.ts";
import { fitLines, svg, textWidth, xmlChars } from "../shared/status_page/svg.ts";
import { percentText } from "../shared/status_page/render.ts";
import { JOBS } from "../shared/jobs/mod.ts";

const pageUrl = (query = "", path = "") => `${stack().functionsUrl}/status-page${path}${query}`;

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const key = () => ({ apikey: stack().secretKey });

/** The tenant row `<g class="tenant" data-slug=…>` of the SVG. */
function svgRow(doc: XmlElement, slug: string): XmlElement {
  const rows = findAll(doc, "g", { "data-slug": slug }).filter((g) => hasClass(g, "tenant"));
  assert.equal(rows.length, 1, `one SVG row for ${slug}`);
  return rows[0];
}

/** `[state, x, width]` of each segment of one bar of an SVG row. */
function svgSegments(row: XmlElement, window: string): Array<[string, number, number]> {
  const bar = findOne(row, "svg", { "data-window": window });
  return findAll(bar, "rect").filter((r) => r.attrs["data-state"]).map((
    r,
  ) => [r.attrs["data-state"], Number(r.attrs.x), Number(r.attrs.width)]);
}

/** `[state, x, width]` of each segment of one bar of an HTML row (as tests/status_page_http_test.ts reads them). */
function htmlSegments(html: string, slug: string, window: string): Array<[string, number, number]> {
  const esc = slug.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const row = html.match(new RegExp(`<tr\\s+class="tenant"\\s+data-slug="${esc}"[\\s\\S]*?</tr>`))?.[0] ?? "";
  const bar = row.match(new RegExp(`<svg\\s+class="bar"\\s+data-window="${window}"[\\s\\S]*?</svg>`))?.[0] ?? "";
  return [...bar.matchAll(/data-state="(\w+)"\s+x="(\d+)"\s+y="0"\s+width="(\d+)"/g)].map((m) => [
    m[1],
    Number(m[2]),
    Number(m[3]),
  ]);
}

/** Asserts the SVG carries no script in any form: elements, event attributes, script URLs. */
function assertScriptFree(doc: XmlElement, raw: string) {
  const names = new Set(elements(doc).map((e) => e.name.toLowerCase()));
  for (const banned of ["script", "foreignobject", "iframe", "object", "embed", "image", "use", "handler"]) {
    assert.ok(!names.has(banned), `no <${banned}>`);
  }
  for (const el of elements(doc)) {
    for (const [name, value] of Object.entries(el.attrs)) {
      assert.doesNotMatch(name, /^on/i, `no event attribute (${name} on <${el.name}>)`);
      assert.doesNotMatch(value, /^\s*(javascript|data|vbscript):/i, `no script URL in ${name}`);
      if (name === "href" || name === "xlink:href") assert.match(value, /^\?/, `links stay on this page: ${value}`);
    }
  }
  assert.doesNotMatch(raw, /<script/i);
  assert.doesNotMatch(raw, /<foreignObject/i);
  assert.doesNotMatch(raw, /javascript:/i);
  assert.doesNotMatch(raw, /<!DOCTYPE|<!ENTITY/i, "no DTD, no entity of our own");
}

/** Every character of the document is one XML 1.0 allows. */
function assertXmlChars(raw: string) {
  assert.doesNotMatch(raw, /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u);
}

Deno.test("status-page ?format=svg and ?format=json answer 401 without credentials, like the HTML page", async (t) => {
  const s = stack();
  for (const format of ["svg", "json", "html", "bogus"]) {
    for (
      const [name, query, headers] of [
        ["no key", "", {}],
        ["wrong apikey", "", { apikey: "sb_secret_wrong" }],
        ["wrong token", "&token=nope", {}],
        ["publishable key", "", { apikey: s.publishableKey }],
        ["publishable key as token", `&token=${encodeURIComponent(s.publishableKey ?? "x")}`, {}],
      ] as Array<[string, string, Record<string, string>]>
    ) {
      await t.step(`${format}: ${name}`, async () => {
        const res = await get(pageUrl(`?format=${format}${query}`), headers);
        assert.equal(res.status, 401, res.text.slice(0, 200));
        assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
        assert.equal(JSON.parse(res.text).error.code, "unauthorized");
        assert.doesNotMatch(res.text, /<svg|<html|"version"/);
      });
    }
  }
});

Deno.test("status-page formats: content types and the page's private, script-free headers", async () => {
  const cases: Array<[string, RegExp]> = [
    ["", /^text\/html; charset=UTF-8$/i],
    ["?format=html", /^text\/html; charset=UTF-8$/i],
    ["?format=svg", /^image\/svg\+xml; charset=utf-8$/],
    ["?format=json", /^application\/json(; charset=utf-8)?$/i],
  ];
  for (const [query, type] of cases) {
    for (const path of ["", "/"]) {
      const res = await get(pageUrl(query, path), key());
      assert.equal(res.status, 200, `${query}: ${res.text.slice(0, 200)}`);
      assert.match(res.headers.get("content-type") ?? "", type, query);
      assert.equal(res.headers.get("cache-control"), "no-store", query);
      assert.equal(res.headers.get("referrer-policy"), "no-referrer", query);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff", query);
      assert.equal(res.headers.get("x-frame-options"), "DENY", query);
      const csp = res.headers.get("content-security-policy") ?? "";
      assert.match(csp, /default-src 'none'/, query);
      assert.doesNotMatch(csp, /script-src|unsafe-eval/, query);
      if (query === "?format=svg") {
        assert.equal(res.headers.get("refresh"), "60");
        assert.match(
          res.text,
          /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/,
        );
      }
      if (query === "?format=json") assert.equal(JSON.parse(res.text).version, 1);
      if (query === "" || query === "?format=html") assert.match(res.text, /^<!doctype html>/);
    }
  }
});

Deno.test("status-page answers an unknown format with a 400 naming 'format' and the allowed values", async () => {
  for (const format of ["xml", "", "SVG", "svg%20", "svg%00", "png", "x".repeat(5000), "json%22%3E%3Cscript%3E"]) {
    const res = await get(pageUrl(`?format=${format}`), key());
    assert.equal(res.status, 400, `${format.slice(0, 20)}: ${res.text.slice(0, 200)}`);
    const body = JSON.parse(res.text);
    assert.equal(body.error.details[0].field, "format");
    assert.match(body.error.message, /'format'/);
    if (format.includes("%00")) {
      // a NUL is refused for any parameter before the page reads it
      assert.equal(body.error.code, "invalid_url");
      assert.match(body.error.message, /NUL/);
    } else {
      assert.equal(body.error.code, "invalid_request");
      for (const allowed of ["html", "svg", "json"]) assert.match(body.error.message, new RegExp(`'${allowed}'`));
    }
    assert.doesNotMatch(res.text, /<script/);
  }
  // the other parameters are checked as before, whatever the format
  const res = await get(pageUrl("?format=svg&limit=0"), key());
  assert.equal(res.status, 400);
  assert.equal(JSON.parse(res.text).error.details[0].field, "limit");
});

const TOP_KEYS = [
  "alertTotal",
  "alerts",
  "asOf",
  "counts",
  "fresh",
  "jobs",
  "lastCheck",
  "lastSuccessAt",
  "limit",
  "missedJobs",
  "overall",
  "reasons",
  "search",
  "servers",
  "services",
  "tenants",
  "total",
  "version",
];
const TENANT_KEYS = [
  "availability",
  "evolutionState",
  "issue",
  "issueCode",
  "lastCheckedAt",
  "lastEventAt",
  "name",
  "openAlerts",
  "since",
  "slug",
  "state",
];
const WINDOW_KEYS = ["bucketSeconds", "buckets", "percent", "segments"];
const SEGMENT_KEYS = ["end", "from", "start", "state", "to"];
const SERVICE_KEYS = ["error", "key", "latencyMs", "name", "reason", "status", "version"];
const ALERT_KEYS = [
  "fingerprint",
  "inhibitedBy",
  "kind",
  "notifiedCount",
  "scope",
  "severity",
  "startedAt",
  "summary",
  "tenantSlug",
];
const JOB_KEYS = [
  "active",
  "expectedBy",
  "job",
  "lastRunAt",
  "lastRunDurationMs",
  "lastRunError",
  "lastRunStatus",
  "lastSuccessAt",
  "missed",
  "missedAlert",
  "nextDueAt",
  "running",
  "schedule",
  "state",
];
const SERVER_KEYS = [
  "checkedAt",
  "downAlert",
  "draining",
  "enabled",
  "error",
  "isDefault",
  "latencyMs",
  "name",
  "state",
  "tenants",
  "tenantsNotHealthy",
  "url",
  "version",
];
const LAST_CHECK_KEYS = ["ageSeconds", "error", "finishedAt", "runId", "startedAt", "status"];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

const keys = (o: unknown) => Object.keys(o as Record<string, unknown>).sort();

Deno.test("status-page ?format=json: version 1, the exact documented keys, the fixture's data", async () => {
  const fx = await createStatusFixture();
  try {
    const res = await get(pageUrl(`?format=json&q=${fx.prefix}`), key());
    assert.equal(res.status, 200);
    const j = JSON.parse(res.text);
    assert.deepEqual(keys(j), TOP_KEYS);
    assert.equal(j.version, 1);
    assert.match(j.asOf, ISO);
    assert.ok(["operational", "degraded", "outage", "unknown"].includes(j.overall));
    assert.ok(Array.isArray(j.reasons) && j.reasons.every((r: unknown) => typeof r === "string"));
    assert.equal(typeof j.fresh, "boolean");
    assert.deepEqual(keys(j.lastCheck), LAST_CHECK_KEYS);
    assert.match(j.lastCheck.startedAt, ISO);
    assert.match(j.lastSuccessAt, ISO);
    assert.deepEqual(keys(j.counts), ["alerts", "tenants"]);
    assert.deepEqual(keys(j.counts.tenants), ["degraded", "healthy", "total", "unhealthy", "unknown"]);
    assert.deepEqual(keys(j.counts.alerts), ["critical", "firing", "inhibited", "warning"]);
    for (const n of [...Object.values(j.counts.tenants), ...Object.values(j.counts.alerts)]) {
      assert.equal(typeof n, "number");
    }
    assert.deepEqual(j.services.map((s: { key: string }) => s.key), ["evolution_api", "database", "supabase"]);
    for (const s of j.services) assert.deepEqual(keys(s), SERVICE_KEYS);
    // the fleet's servers (a key added within version 1): the default one first
    assert.ok(Array.isArray(j.servers) && j.servers.length >= 1, "at least the default server");
    assert.equal(j.servers[0].name, "default");
    assert.equal(j.servers[0].isDefault, true);
    for (const s of j.servers) {
      assert.deepEqual(keys(s), SERVER_KEYS);
      assert.equal(typeof s.tenants, "number");
      assert.equal(typeof s.tenantsNotHealthy, "number");
    }
    assert.deepEqual(j.services[0], {
      key: "evolution_api",
      name: "Evolution API",
      status: "healthy",
      latencyMs: 12,
      version: fx.evolutionVersion,
      error: null,
      reason: null,
    });
    assert.equal(j.services[2].reason, "SUPABASE_URL is not set");
    assert.equal(j.search, fx.prefix);
    assert.equal(j.limit, 200);
    assert.equal(j.total, 4);
    assert.equal(j.tenants.length, 4);
    for (const t of j.tenants) {
      assert.deepEqual(keys(t), TENANT_KEYS);
      assert.deepEqual(keys(t.availability), ["24h", "7d"]);
      for (const [w, buckets, seconds] of [["24h", 96, 900], ["7d", 168, 3600]] as const) {
        const win = t.availability[w];
        assert.deepEqual(keys(win), WINDOW_KEYS);
        assert.equal(win.buckets, buckets);
        assert.equal(win.bucketSeconds, seconds);
        for (const s of win.segments) {
          assert.deepEqual(keys(s), SEGMENT_KEYS);
          assert.match(s.start, ISO);
          assert.match(s.end, ISO);
        }
        // the segments tile the bar
        assert.equal(win.segments[0].from, 0);
        assert.equal(win.segments.at(-1).to, buckets);
        for (let i = 1; i < win.segments.length; i++) assert.equal(win.segments[i].from, win.segments[i - 1].to);
      }
    }
    const bySlug = (slug: string) => j.tenants.find((t: { slug: string }) => t.slug === slug);
    assert.deepEqual(j.tenants.slice(0, 2).map((t: { slug: string }) => t.slug), [fx.slugs.down, fx.slugs.deg]);
    const deg = bySlug(fx.slugs.deg);
    assert.equal(deg.state, "degraded");
    assert.equal(deg.name, "Degraded Co");
    assert.equal(deg.issueCode, "instance_disconnected");
    assert.equal(deg.issue, "WhatsApp not connected (close)");
    assert.match(deg.since, ISO);
    assert.match(deg.lastCheckedAt, ISO);
    assert.equal(deg.lastEventAt, null);
    assert.equal(deg.openAlerts, 0);
    assert.deepEqual(
      deg.availability["24h"].segments.map((s: { state: string; from: number; to: number }) => [s.state, s.from, s.to]),
      [["healthy", 0, 71], ["degraded", 71, 96]],
    );
    assert.ok(deg.availability["24h"].percent > 74.5 && deg.availability["24h"].percent < 74.6);
    assert.deepEqual(
      bySlug(fx.slugs.down).availability["7d"].segments.map((s: { state: string; from: number; to: number }) => [
        s.state,
        s.from,
        s.to,
      ]),
      [["unknown", 0, 95], ["healthy", 95, 155], ["unhealthy", 155, 168]],
    );
    assert.equal(bySlug(fx.slugs.xss).name, XSS_NAME, "JSON carries the name as it is (JSON.parse gives it back)");
    assert.equal(bySlug(fx.slugs.down).openAlerts, 1);
    const alert = j.alerts.find((a: { fingerprint: string }) => a.fingerprint === `instance_missing:${fx.slugs.down}`);
    assert.ok(alert, "the fixture's alert");
    for (const a of j.alerts) assert.deepEqual(keys(a), ALERT_KEYS);
    assert.deepEqual({ ...alert, startedAt: "-" }, {
      severity: "critical",
      fingerprint: `instance_missing:${fx.slugs.down}`,
      kind: "instance_missing",
      scope: "tenant",
      tenantSlug: fx.slugs.down,
      summary: `${fx.slugs.down}: Instance not found in Evolution API`,
      startedAt: "-",
      inhibitedBy: null,
      notifiedCount: 0,
    });
    assert.equal(j.alertTotal, j.alerts.length);
    assert.ok(j.jobs.length >= 5);
    for (const job of j.jobs) assert.deepEqual(keys(job), JOB_KEYS);
    const hc = j.jobs.find((x: { job: string }) => x.job === "health-check");
    assert.equal(typeof hc.missed, "boolean");
    assert.equal(typeof hc.running, "boolean");
    assert.ok(Array.isArray(j.missedJobs));

    // the limit caps the list, the total still counts every match
    const two = JSON.parse((await get(pageUrl(`?format=json&q=${fx.prefix}&limit=2`), key())).text);
    assert.equal(two.limit, 2);
    assert.equal(two.total, 4);
    assert.deepEqual(two.tenants.map((t: { slug: string }) => t.slug), [fx.slugs.down, fx.slugs.deg]);
    // nothing matches: an empty list, the same keys
    const none = JSON.parse((await get(pageUrl(`?format=json&q=${fx.prefix}-nobody`), key())).text);
    assert.deepEqual(keys(none), TOP_KEYS);
    assert.deepEqual(none.tenants, []);
    assert.equal(none.total, 0);
  } finally {
    await fx.cleanup();
  }
});

Deno.test("status-page ?format=svg: strict XML, no script of any kind, the HTML page's states, bars and alert", async () => {
  const fx = await createStatusFixture();
  try {
    const [svgRes, htmlRes] = await Promise.all([
      get(pageUrl(`?format=svg&q=${fx.prefix}`), key()),
      get(pageUrl(`?q=${fx.prefix}`), key()),
    ]);
    assert.equal(svgRes.status, 200);
    assertXmlChars(svgRes.text);
    const doc = parseXml(svgRes.text);
    assert.equal(doc.name, "svg");
    assert.equal(doc.attrs.xmlns, "http://www.w3.org/2000/svg");
    assert.equal(doc.attrs.width, "1400");
    const height = Number(doc.attrs.height);
    assert.ok(height > 900 && height < 3000, `height ${height}`);
    assert.equal(doc.attrs.viewBox, `0 0 1400 ${height}`);
    assertScriptFree(doc, svgRes.text);
    assert.match(textOf(findAll(doc, "title")[0]), /WhatsApp status$/);

    const overall = findOne(doc, "g", { id: "overall" }).attrs["data-overall"];
    assert.match(htmlRes.text, new RegExp(`data-overall="${overall}"`), "the same overall status as the HTML page");

    // the same rows, in the same order, with the same states
    const htmlOrder = [...htmlRes.text.matchAll(/<tr\s+class="tenant"\s+data-slug="([^"]+)"\s+data-state="(\w+)"/g)]
      .map((m) => [m[1], m[2]]);
    const svgOrder = findAll(doc, "g").filter((g) => hasClass(g, "tenant")).map((g) => [
      g.attrs["data-slug"],
      g.attrs["data-state"],
    ]);
    assert.deepEqual(svgOrder, htmlOrder);
    assert.equal(svgOrder.length, 4);
    for (const [slug, state] of [[fx.slugs.ok, "healthy"], [fx.slugs.deg, "degraded"], [fx.slugs.down, "unhealthy"]]) {
      const badge = findAll(svgRow(doc, slug), "g").find((g) => hasClass(g, "badge"));
      assert.equal(badge?.attrs["data-state"], state);
      assert.equal(textOf(badge!, true), state);
    }
    // the same segments and widths as the HTML page, for every tenant and both windows
    for (const slug of Object.values(fx.slugs)) {
      for (const window of ["24h", "7d"]) {
        const fromSvg = svgSegments(svgRow(doc, slug), window);
        assert.ok(fromSvg.length > 0, `${slug} ${window} has segments`);
        assert.deepEqual(fromSvg, htmlSegments(htmlRes.text, slug, window), `${slug} ${window}`);
      }
      const bar = findOne(svgRow(doc, slug), "svg", { "data-window": "7d" });
      assert.equal(bar.attrs.viewBox, "0 0 168 1");
      assert.equal(bar.attrs.preserveAspectRatio, "none");
    }
    assert.deepEqual(svgSegments(svgRow(doc, fx.slugs.deg), "24h"), [["healthy", 0, 71], ["degraded", 71, 25]]);
    const pct = findAll(svgRow(doc, fx.slugs.deg), "text").find((e) =>
      hasClass(e, "pct") && e.attrs["data-window"] === "24h"
    );
    assert.match(textOf(pct!), /^74\.5\d%$/);
    // the alert, the services, the jobs
    const alert = findOne(doc, "g", { "data-fingerprint": `instance_missing:${fx.slugs.down}` });
    assert.match(textOf(alert), /Instance not found in Evolution API/);
    assert.match(
      textOf(findOne(doc, "g", { "data-service": "evolution_api" })),
      new RegExp(fx.evolutionVersion.replaceAll(".", "\\.")),
    );
    const jobs = findAll(doc, "g").filter((g) => hasClass(g, "job")).map((g) => g.attrs["data-job"]);
    for (const job of JOBS.map((j) => j.name)) {
      assert.ok(jobs.includes(job), `job ${job}`);
    }
    assert.match(
      textOf(findOne(doc, "g", { id: "tenant-count" })),
      new RegExp(`Showing 4 of 4 active tenants matching “${fx.prefix}”`),
    );
  } finally {
    await fx.cleanup();
  }
});

/** Adds a tenant whose slug, name and issue are hostile: quotes, `&`, `<`, `]]>`, control characters, very long. */
async function addHostileTenant(fx: StatusFixture) {
  const slug = `${fx.prefix}-zz"'<&]]>`;
  const name = `Quote's "Co" & <b>bold</b> ]]> \u0001bell\u0007 ${"Long name ".repeat(30)}end`;
  const issue = `Evolution said: <error code="1">]]&gt; & ' "</error>\u0008 ${"detail ".repeat(40)}`;
  const sql = testSql();
  const [t] = await sql<{ id: string }[]>`
    insert into public.tenants (slug, name) values (${slug}, ${name}) returning id`;
  await sql`
    insert into maintenance.tenant_health (tenant_id, tenant_slug, state, issue_code, issue, severity, since,
      last_checked_at, last_change_at)
    values (${t.id}, ${slug}, 'degraded', 'x"<y', ${issue}, 'low', now() - interval '2 hours', now(), now())`;
  return { slug, name, issue };
}

Deno.test("status-page ?format=svg escapes hostile names, slugs, issues and searches in text and attributes", async () => {
  const fx = await createStatusFixture();
  try {
    const hostile = await addHostileTenant(fx);
    const res = await get(pageUrl(`?format=svg&q=${fx.prefix}`), key());
    assert.equal(res.status, 200);
    assertXmlChars(res.text);
    const doc = parseXml(res.text);
    assertScriptFree(doc, res.text);

    // the injected name is text: never raw, escaped, and the parser reads it back whole from the tooltip
    assert.ok(!res.text.includes(XSS_NAME), "the raw name never reaches the document");
    assert.ok(!res.text.includes("<script>window.__xss"), "no injected script element");
    assert.ok(res.text.includes("&lt;script&gt;window.__xss = 1&lt;/script&gt;&lt;img src=x onerror=&quot;"));
    const xssRow = svgRow(doc, fx.slugs.xss);
    const nameCell = findAll(xssRow, "g").find((g) =>
      hasClass(g, "cell") && g.children.some((c) => typeof c !== "string" && hasClass(c, "tenant-name"))
    )!;
    assert.equal(textOf(findOne(nameCell, "title")), XSS_NAME, "the full name in the <title>");
    const shown = textOf(findAll(nameCell, "text").find((e) => hasClass(e, "tenant-name"))!);
    assert.ok(shown.endsWith("…"), `cut with an ellipsis: ${shown}`);
    assert.ok(XSS_NAME.startsWith(shown.slice(0, -1).trimEnd()), "what is shown is the start of the name");

    // the hostile tenant: the attribute round-trips exactly, control characters become U+FFFD
    const row = svgRow(doc, hostile.slug);
    assert.equal(row.attrs["data-state"], "degraded");
    const titles = findAll(row, "title").map((e) => textOf(e));
    assert.ok(titles.includes(xmlChars(hostile.name)), "the whole name, as XML allows it, in a <title>");
    assert.ok(titles.includes(xmlChars(hostile.issue)), "the whole issue in a <title>");
    assert.ok(xmlChars(hostile.name).includes("\uFFFDbell\uFFFD"));
    assert.ok(res.text.includes("]]&gt;"), "]]> is written escaped");
    assert.ok(!/]]>/.test(res.text.replace(/^<\?xml[^>]*>/, "")), "never a raw ]]>");
    for (const text of findAll(row, "text")) {
      for (const line of findAll(text, "tspan")) {
        const w = textWidth(textOf(line).trimEnd(), { size: Number(text.attrs["font-size"]) });
        assert.ok(w <= 236, `a line fits its column: ${textOf(line)} (${w} px)`);
      }
    }

    // a hostile search is shown as text too
    const q = `${fx.prefix}"'<b>&]]>\u0001`;
    const searched = await get(pageUrl(`?format=svg&q=${encodeURIComponent(q)}`), key());
    assert.equal(searched.status, 200);
    assertXmlChars(searched.text);
    const sdoc = parseXml(searched.text);
    assertScriptFree(sdoc, searched.text);
    assert.match(textOf(findOne(sdoc, "g", { id: "tenant-count" })), /Showing 0 of 0 active tenants matching/);
    assert.ok(textOf(findOne(sdoc, "g", { id: "tenant-count" })).includes(xmlChars(q)));

    // JSON keeps every value as it is (JSON escapes it)
    const j = JSON.parse((await get(pageUrl(`?format=json&q=${fx.prefix}`), key())).text);
    const t = j.tenants.find((x: { slug: string }) => x.slug === hostile.slug);
    assert.equal(t.name, hostile.name);
    assert.equal(t.issue, hostile.issue);
  } finally {
    await fx.cleanup();
  }
});

Deno.test("status-page ?format=svg: the limit, the link to the rest, and the empty states", async () => {
  const fx = await createStatusFixture();
  try {
    const two = await get(pageUrl(`?format=svg&q=${fx.prefix}&limit=2`), key());
    const all = await get(pageUrl(`?format=svg&q=${fx.prefix}`), key());
    const d2 = parseXml(two.text);
    const d4 = parseXml(all.text);
    const rows = (d: XmlElement) =>
      findAll(d, "g").filter((g) => hasClass(g, "tenant")).map((g) => g.attrs["data-slug"]);
    assert.deepEqual(rows(d2), [fx.slugs.down, fx.slugs.deg]);
    assert.equal(rows(d4).length, 4);
    assert.ok(Number(d4.attrs.height) > Number(d2.attrs.height), "the height follows the content");
    assert.match(textOf(findOne(d2, "g", { id: "tenant-count" })), /Showing 2 of 4 active tenants/);
    const more = findOne(d2, "a", { "data-format": "svg" });
    const params = new URLSearchParams(more.attrs.href.slice(1));
    assert.deepEqual(Object.fromEntries(params), { format: "svg", q: fx.prefix, limit: "4" });
    assert.equal(textOf(more), "Show all 4");
    assert.equal(findAll(d4, "a", { "data-format": "svg" }).length, 0, "no such link when all are shown");

    const none = await get(pageUrl(`?format=svg&q=${fx.prefix}-nobody`), key());
    const d0 = parseXml(none.text);
    assert.equal(rows(d0).length, 0);
    assert.equal(findAll(d0, "g", { id: "tenants" }).length, 1);
    assert.equal(textOf(findOne(d0, "g", { id: "tenants" })), "No tenant to show.");
    assert.ok(Number(d0.attrs.height) < Number(d2.attrs.height));
  } finally {
    await fx.cleanup();
  }
});

Deno.test("status-page ?format=svg never writes the secret key; its links carry only the read-only token", async (t) => {
  const s = stack();
  const hrefs = (text: string) => findAll(parseXml(text), "a").map((a) => a.attrs.href);
  await t.step("opened with ?token=<secret key>: 200, the key appears nowhere, the links carry no token", async () => {
    for (const format of ["svg", "json"]) {
      const res = await get(pageUrl(`?format=${format}&q=sp-&token=${encodeURIComponent(s.secretKey)}`));
      assert.equal(res.status, 200);
      assert.ok(!res.text.includes(s.secretKey), `${format}: the secret key is not in the answer`);
      assert.ok(!res.text.includes(encodeURIComponent(s.secretKey)), `${format}: not even URL-encoded`);
      if (format === "svg") {
        const links = hrefs(res.text);
        assert.ok(links.length >= 2, "links to the other formats");
        for (const href of links) assert.ok(!new URLSearchParams(href.slice(1)).has("token"), href);
      }
    }
  });
  await t.step(
    "opened with the read-only token: the links carry it, the search and the limit, and they work",
    async () => {
      const token = `ro_${crypto.randomUUID()}`;
      const app = createStatusPageApp(testDeps({ env: { STATUS_PAGE_TOKEN: token } }));
      const res = await app.request(`/status-page?format=svg&token=${token}&q=sp-&limit=7`);
      assert.equal(res.status, 200);
      const text = await res.text();
      const links = hrefs(text);
      const formats = links.map((h) => new URLSearchParams(h.slice(1)).get("format"));
      assert.ok(formats.includes("html") && formats.includes("json"), formats.join());
      for (const href of links) {
        const p = new URLSearchParams(href.slice(1));
        assert.equal(p.get("token"), token);
        assert.equal(p.get("q"), "sp-");
        assert.match(p.get("limit") ?? "", /^\d+$/);
        const followed = await app.request(`/status-page${href}`);
        assert.equal(followed.status, 200, href);
        const type = followed.headers.get("content-type") ?? "";
        assert.ok(
          type.includes({ html: "text/html", svg: "image/svg+xml", json: "application/json" }[p.get("format")!]!),
        );
        await followed.body?.cancel();
      }
      // the secret key, even given as the header with the read-only token in the URL, is never written
      const both = await app.request(`/status-page?format=svg&token=${token}`, { headers: { apikey: s.secretKey } });
      assert.ok(!(await both.text()).includes(s.secretKey));
    },
  );
});

Deno.test("svg helpers: XML characters, escaping, fitting with an ellipsis at grapheme boundaries", () => {
  assert.equal(xmlChars("a\u0000b\u0001c\u0008d\u000be\u000cf\u001fg"), "a\uFFFDb\uFFFDc\uFFFDd\uFFFDe\uFFFDf\uFFFDg");
  assert.equal(xmlChars("tab\tlf\ncr\r é 😀 \uFFFD"), "tab\tlf\ncr\r é 😀 \uFFFD");
  assert.equal(xmlChars("lone \uD800 high, \uDC00 low, \uFFFE \uFFFF"), "lone \uFFFD high, \uFFFD low, \uFFFD \uFFFD");
  assert.equal(
    svg`<text a="${`"'<>&`}">${`]]> & <x/> '"`}</text>`.toString(),
    `<text a="&quot;&#39;&lt;&gt;&amp;">]]&gt; &amp; &lt;x/&gt; &#39;&quot;</text>`,
  );
  assert.equal(svg`<t>${"a\u0001"}${null}${false}${undefined}${1 / 3}</t>`.toString(), "<t>a\uFFFD0.33</t>");
  assert.equal(svg`${svg`<b>${"<"}</b>`}`.toString(), "<b>&lt;</b>", "an escaped fragment is not escaped twice");
  // the template's own line breaks and indentation (as deno fmt lays them out) are not part of the document
  const laidOut = svg`
    <g class="a"
      data-x="${"1"}">
      <text>${"a"} of ${"b"}
        wrapped</text>
    </g>
  `;
  assert.equal(laidOut.toString(), `<g class="a" data-x="1"><text>a of b wrapped</text></g>`);

  const style = { size: 13 };
  assert.deepEqual(fitLines("short", 200, style), { lines: ["short"], truncated: false });
  assert.deepEqual(fitLines("  many   spaces\n here ", 400, style), { lines: ["many spaces here"], truncated: false });
  assert.deepEqual(fitLines("", 100, style), { lines: [], truncated: false });
  const long = "word ".repeat(100).trim();
  const one = fitLines(long, 200, style);
  assert.equal(one.lines.length, 1);
  assert.ok(one.truncated && one.lines[0].endsWith("…"));
  assert.ok(textWidth(one.lines[0], style) <= 200);
  const two = fitLines(long, 200, style, 2);
  assert.equal(two.lines.length, 2);
  assert.ok(!two.lines[0].endsWith("…") && two.lines[1].endsWith("…"));
  for (const l of two.lines) assert.ok(textWidth(l, style) <= 200, l);
  // a word longer than the line is broken, and nothing is lost when it fits in the lines allowed
  const word = "x".repeat(60);
  const broken = fitLines(word, 100, style, 5);
  assert.equal(broken.truncated, false);
  assert.equal(broken.lines.join(""), word);
  // graphemes are never split: a family emoji, a letter with combining accents
  const family = "👨‍👩‍👧‍👦";
  const emoji = fitLines(family.repeat(40), 100, style);
  assert.ok(emoji.truncated);
  assert.equal(emoji.lines[0].slice(0, -1).replaceAll(family, ""), "", "only whole family emojis before the …");
  const accents = fitLines("e\u0301\u0302".repeat(80), 60, style);
  assert.equal(accents.lines[0].slice(0, -1).replaceAll("e\u0301\u0302", ""), "");
  // wide characters take more room than narrow ones
  assert.ok(textWidth("漢字漢字", style) > textWidth("iiii", style) * 3);
});

Deno.test("percentText prints two decimals whatever the database's numeric looks like (74.50 is 74.50%, not 74.5%)", () => {
  assert.equal(percentText("74.51"), "74.51%");
  assert.equal(percentText("74.50"), "74.50%");
  assert.equal(percentText("74.5"), "74.50%");
  assert.equal(percentText("100"), "100.00%");
  assert.equal(percentText("100.00"), "100.00%");
  assert.equal(percentText("0"), "0.00%");
  assert.equal(percentText(null), "no data");
});
