// The `metrics` function: the exposition parses line by line (and passes `promtool check metrics` when promtool is
// installed), its values are the database's (a fixture written and removed here), its access is the secret key or
// the read-only METRICS_TOKEN (which opens nothing else), and the real Prometheus scrapes it and answers a query per
// family (skipped, saying so, when the `prometheus` binary is absent).
import assert from "node:assert/strict";
import { callFunction, createTenant, stack, testDeps, testSql, waitFor } from "./_helpers.ts";
import { createMetricsApp, loadMetricsSnapshot } from "../shared/metrics/app.ts";
import { METRIC_FAMILIES, metricsRegistry } from "../shared/metrics/render.ts";
import { createStatusPageApp } from "../shared/status_page/app.ts";
import { createJobApp } from "../shared/jobs/app.ts";
import { healthCheck } from "../shared/jobs/health_check.ts";

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const VALUE = "(?:[+-]?(?:\\d+(?:\\.\\d+)?(?:[eE][+-]?\\d+)?|Inf)|NaN)";
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(?:${LABEL})(?:,${LABEL})*\\})? ${VALUE}$`);
const HELP = new RegExp(`^# HELP (${NAME}) .*$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/** Every line is a HELP, TYPE or sample line (blank lines between families allowed); returns families → types. */
function parseExposition(text: string, openMetrics = false): Map<string, string> {
  const types = new Map<string, string>();
  const lines = text.split("\n");
  if (openMetrics) assert.equal(lines.filter(Boolean).at(-1), "# EOF");
  for (const line of lines) {
    if (line === "" || (openMetrics && line === "# EOF")) continue;
    const t = TYPE.exec(line);
    if (t) {
      types.set(t[1], t[2]);
      continue;
    }
    if (HELP.test(line)) continue;
    const s = SAMPLE.exec(line);
    assert.ok(s, `not a valid exposition line: ${JSON.stringify(line)}`);
    const family = s[1].replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(s[1]) || types.has(family), `sample before its TYPE: ${line}`);
  }
  return types;
}

/** The value of one sample, by exact name and label subset. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || line.startsWith("#")) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries(
      [...(m[2] ?? "").matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

interface Fixture {
  slug: string;
  tenantId: string;
  job: string;
  kind: string;
  route: string;
  cleanup(): Promise<void>;
}

/** Writes a tenant that is unhealthy, a firing alert, job runs, Evolution call rows and a cross-tenant rejection. */
async function writeFixture(): Promise<Fixture> {
  const sql = testSql();
  const { slug, tenantId } = await createTenant({ prefix: "mx" });
  const tag = slug.replaceAll("-", "_");
  const job = `mx-job-${tag}`;
  const kind = `mx_kind_${tag}`;
  const route = `mx_route_${tag}`;
  await sql`
    insert into maintenance.tenant_health (tenant_id, tenant_slug, state, issue_code, severity, since, last_checked_at,
      last_change_at, consecutive)
    values (${tenantId}, ${slug}, 'unhealthy', 'instance_missing', 'high', now() - interval '1 hour',
      now() - interval '120 seconds', now() - interval '1 hour', 7)`;
  await sql`
    insert into maintenance.alerts (fingerprint, kind, scope, tenant_id, tenant_slug, status, severity, summary,
      started_at, last_seen_at)
    values (${`${kind}:${slug}`}, ${kind}, 'tenant', ${tenantId}, ${slug}, 'firing', 'critical', 'fixture', now(), now()),
      (${`${kind}:${slug}:2`}, ${kind}, 'tenant', ${tenantId}, ${slug}, 'firing', 'critical', 'fixture', now(), now())`;
  await sql`
    insert into maintenance.job_runs (job, status, started_at, finished_at, duration_ms, trigger)
    values (${job}, 'ok', now() - interval '10 minutes', now() - interval '10 minutes', 1500, 'test'),
      (${job}, 'error', now() - interval '5 minutes', now() - interval '5 minutes', 2500, 'test')`;
  await sql`
    insert into public.api_logs (tenant_slug, service, event, status, response_time)
    values (${slug}, 'whatsapp', ${route}, 'success', 40), (${slug}, 'whatsapp', ${route}, 'success', 300),
      (${slug}, 'whatsapp', ${route}, 'success', 300), (${slug}, 'whatsapp', ${route}, 'error', 12000)`;
  await sql`
    insert into maintenance.notification_outbox (dedupe_key, channel, kind, payload, status, attempts)
    values (${`mx:${slug}`}, 'log', 'message', '{}'::jsonb, 'failed', 1)`;
  return {
    slug,
    tenantId,
    job,
    kind,
    route,
    async cleanup() {
      await sql`delete from maintenance.notification_outbox where dedupe_key = ${`mx:${slug}`}`;
      await sql`delete from maintenance.alerts where kind = ${kind}`;
      await sql`delete from maintenance.job_runs where job = ${job}`;
      await sql`delete from public.api_logs where tenant_slug = ${slug}`;
      await sql`delete from public.tenants where id = ${tenantId}`;
    },
  };
}

Deno.test("metrics: the exposition parses, and its values are the database's", async () => {
  const f = await writeFixture();
  try {
    const snapshot = await loadMetricsSnapshot(testSql());
    for (const open of [false, true]) {
      const text = await metricsRegistry(snapshot, open).metrics();
      const types = parseExposition(text, open);
      for (const family of METRIC_FAMILIES) assert.ok(types.has(family), `family ${family} is served`);
      assert.equal(types.get("canais_evolution_call_duration_seconds"), "histogram");
      assert.equal(sample(text, "canais_tenant_not_healthy", { tenant: f.slug, state: "unhealthy" }), 1);
      assert.equal(sample(text, "canais_tenant_consecutive_failures", { tenant: f.slug }), 7);
      const age = sample(text, "canais_tenant_check_age_seconds", { tenant: f.slug })!;
      assert.ok(age >= 120 && age < 3600, `check age ${age}`);
      assert.equal(sample(text, "canais_alerts_open", { kind: f.kind, severity: "critical" }), 2);
      assert.equal(sample(text, "canais_job_last_run_status", { job: f.job, status: "error" }), 1);
      assert.equal(sample(text, "canais_job_last_run_duration_seconds", { job: f.job }), 2.5);
      assert.equal(sample(text, "canais_job_runs_window", { job: f.job, status: "ok" }), 1);
      assert.equal(sample(text, "canais_job_runs_window", { job: f.job, status: "error" }), 1);
      assert.equal(sample(text, "canais_job_run_seconds_window", { job: f.job, status: "error" }), 2.5);
      const h = "canais_evolution_call_duration_seconds";
      const ok = { route: f.route, status: "success" };
      assert.equal(sample(text, `${h}_bucket`, { ...ok, le: "0.05" }), 1);
      assert.equal(sample(text, `${h}_bucket`, { ...ok, le: "0.25" }), 1);
      assert.equal(sample(text, `${h}_bucket`, { ...ok, le: "0.5" }), 3);
      assert.equal(sample(text, `${h}_bucket`, { ...ok, le: "+Inf" }), 3);
      assert.equal(sample(text, `${h}_count`, ok), 3);
      assert.equal(sample(text, `${h}_sum`, ok), 0.64);
      const err = { route: f.route, status: "error" };
      assert.equal(sample(text, `${h}_bucket`, { ...err, le: "10" }), 0);
      assert.equal(sample(text, `${h}_bucket`, { ...err, le: "+Inf" }), 1);
    }
    // aggregates against independent queries of the same rows
    const sql = testSql();
    const text = await metricsRegistry(snapshot).metrics();
    const [t] = await sql<{ n: number }[]>`
      select count(*)::int as n from maintenance.tenant_health where state <> 'healthy'`;
    assert.equal(sample(text, "canais_tenants_not_healthy"), t.n);
    const byState = await sql<{ state: string; n: number }[]>`
      select state, count(*)::int as n from maintenance.tenant_health group by 1`;
    for (const { state, n } of byState) {
      const summed = text.split("\n").filter((l) => l.startsWith("canais_tenants{") && l.includes(`state="${state}"`))
        .reduce((a, l) => a + Number(l.split(" ").at(-1)), 0);
      assert.equal(summed, n, `tenants in state ${state}`);
    }
    const outbox = await sql<{ channel: string; status: string; n: number }[]>`
      select channel, status, count(*)::int as n from maintenance.notification_outbox
      where status in ('pending', 'failed') group by 1, 2`;
    for (const o of outbox) {
      assert.equal(sample(text, "canais_outbox_messages", { channel: o.channel, status: o.status }), o.n);
    }
    assert.ok(outbox.some((o) => o.channel === "log" && o.status === "failed"), "the fixture's outbox row is counted");
  } finally {
    await f.cleanup();
  }
});

Deno.test("metrics: per-tenant series are capped, the total is not", async () => {
  const f = await writeFixture();
  try {
    const s = await loadMetricsSnapshot(testSql(), { tenantLimit: 1 });
    assert.equal(s.tenantsNotHealthy.length, 1);
    assert.ok(s.tenantsNotHealthyTotal >= 1);
  } finally {
    await f.cleanup();
  }
});

Deno.test("metrics over HTTP: secret key or METRICS_TOKEN, 401 otherwise; the token opens nothing else", async () => {
  const s = stack();
  const url = `${s.functionsUrl}/metrics`;
  for (
    const headers of [{}, { apikey: s.publishableKey }, { authorization: `Bearer ${s.secretKey}x` }] as Record<
      string,
      string
    >[]
  ) {
    const r = await fetch(url, { headers });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.code, "unauthorized");
  }
  const ok = await fetch(url, { headers: { authorization: `Bearer ${s.secretKey}` } });
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  parseExposition(await ok.text());
  const om = await fetch(url, { headers: { apikey: s.secretKey, accept: "application/openmetrics-text" } });
  assert.match(om.headers.get("content-type") ?? "", /^application\/openmetrics-text/);
  parseExposition(await om.text(), true);

  const token = `mt_${crypto.randomUUID()}`;
  const deps = testDeps({ env: { METRICS_TOKEN: token } });
  const app = createMetricsApp(deps);
  for (
    const headers of [{ authorization: `Bearer ${token}` }, { "x-metrics-token": token }, { apikey: token }] as Record<
      string,
      string
    >[]
  ) {
    const r = await app.request("/metrics", { headers });
    assert.equal(r.status, 200, JSON.stringify(headers));
    await r.body?.cancel();
  }
  for (const path of [`/metrics?token=${token}`, "/metrics"]) {
    const r = await app.request(path, { headers: path === "/metrics" ? { authorization: `Bearer ${token}x` } : {} });
    assert.equal(r.status, 401, path);
    await r.body?.cancel();
  }
  const page = await createStatusPageApp(deps).request("/status-page", {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(page.status, 401, "the metrics token does not open the status page");
  await page.body?.cancel();
  const job = await createJobApp(healthCheck, deps).request("/health-check", {
    method: "POST",
    headers: { apikey: token, "content-type": "application/json" },
    body: "{}",
  });
  assert.equal(job.status, 401, "the metrics token cannot run a job");
  await job.body?.cancel();
});

async function which(bin: string): Promise<string | null> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/bin", "/usr/local/bin"])) {
    try {
      const p = `${dir}/${bin}`;
      if ((await Deno.stat(p)).isFile) return p;
    } catch { /* not here */ }
  }
  return null;
}

Deno.test("promtool check metrics accepts the exposition", async (t) => {
  const promtool = await which("promtool");
  if (!promtool) {
    console.warn("SKIPPED: promtool is not installed (apt-get install -y prometheus)");
    return;
  }
  const s = stack();
  const text = await (await fetch(`${s.functionsUrl}/metrics`, { headers: { apikey: s.secretKey } })).text();
  await t.step("promtool check metrics", async () => {
    const p = new Deno.Command(promtool, {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    })
      .spawn();
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(text));
    await w.close();
    const out = await p.output();
    const msg = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    // lint findings (naming advice) are printed; a parse error fails with "error while linting"
    assert.doesNotMatch(msg, /error while linting|text format parsing error/, msg);
  });
});

Deno.test("the README's example alert rules are docs/prometheus/alerts.yml, and promtool check rules loads them", async () => {
  const rules = await Deno.readTextFile("docs/prometheus/alerts.yml");
  assert.ok((await Deno.readTextFile("README.md")).includes(rules), "README shows docs/prometheus/alerts.yml as it is");
  const promtool = await which("promtool");
  if (!promtool) {
    console.warn("SKIPPED: promtool is not installed (apt-get install -y prometheus)");
    return;
  }
  const out = await new Deno.Command(promtool, { args: ["check", "rules", "docs/prometheus/alerts.yml"] }).output();
  const msg = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, msg);
  assert.match(msg, /SUCCESS: 3 rules found/);
});

Deno.test("the real Prometheus scrapes metrics and answers a query per family", async () => {
  const prometheus = await which("prometheus");
  if (!prometheus) {
    console.warn("SKIPPED: the prometheus binary is not installed (apt-get install -y prometheus)");
    return;
  }
  const s = stack();
  // a full health check registers the default Evolution server and records its state (canais_evolution_server_*)
  const run = await callFunction("health-check", { trigger: "test" });
  assert.equal(run.status, 200, run.text);
  const f = await writeFixture();
  const dir = await Deno.makeTempDir({ prefix: "canais-prom-" });
  const target = new URL(`${s.functionsUrl}/metrics`);
  const port = Number(Deno.env.get("CANAIS_PROMETHEUS_PORT") ?? String(Number(target.port) + 9));
  await Deno.writeTextFile(
    `${dir}/prometheus.yml`,
    [
      "global: { scrape_interval: 1s, scrape_timeout: 1s }",
      "scrape_configs:",
      "  - job_name: canais",
      `    metrics_path: ${target.pathname}`,
      `    authorization: { type: Bearer, credentials: "${s.secretKey}" }`,
      `    static_configs: [{ targets: ["${target.host}"] }]`,
      "",
    ].join("\n"),
  );
  const proc = new Deno.Command(prometheus, {
    args: [
      `--config.file=${dir}/prometheus.yml`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const api = `http://127.0.0.1:${port}/api/v1`;
  const query = async (q: string) => {
    const r = await fetch(`${api}/query?query=${encodeURIComponent(q)}`).catch(() => null);
    if (!r?.ok) {
      await r?.body?.cancel();
      return [];
    }
    return (await r.json()).data.result as Array<{ metric: Record<string, string>; value: [number, string] }>;
  };
  try {
    await waitFor("Prometheus scraped metrics", async () => (await query('up{job="canais"} == 1')).length > 0, 60_000);
    for (const family of METRIC_FAMILIES) {
      const q = family === "canais_evolution_call_duration_seconds" ? `${family}_count` : family;
      const result = await waitFor(`a series of ${family}`, async () => {
        const r = await query(q);
        return r.length ? r : null;
      }, 15_000);
      assert.ok(result.length > 0, family);
    }
    const streak = await query(`canais_tenant_consecutive_failures{tenant="${f.slug}"}`);
    // the fixture's 7, or more when the stack's own 5-minute health-check checked the tenant since (it only adds)
    const [now] = await testSql()<{ consecutive: number }[]>`
      select consecutive from maintenance.tenant_health where tenant_slug = ${f.slug}`;
    const seen = Number(streak[0]?.value[1]);
    assert.ok(
      seen >= 7 && seen <= now.consecutive,
      `${seen} between the fixture's 7 and the table's ${now.consecutive}`,
    );
    const p95 = await query(
      `histogram_quantile(0.95, sum by (le) (canais_evolution_call_duration_seconds_bucket{route="${f.route}"}))`,
    );
    assert.ok(Number(p95[0]?.value[1]) > 0, `p95 of the fixture route: ${JSON.stringify(p95)}`);
  } finally {
    proc.kill("SIGTERM");
    await proc.stderr.cancel();
    await proc.status;
    await f.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});
