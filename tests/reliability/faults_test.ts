// The fault matrix. Evolution faults (in-process simulator: down, slow past the client timeout, a hanging request,
// 401, 500, malformed JSON, the 200-with-{error:true} quirk, a reset connection) against every job and every
// whatsapp-ops action, then a v1.8 server; Slack and the email API down then back; the webhook receiver's database
// connections killed; Postgres restarted between runs; a job killed mid-run; two runs of one job at once.
// For each: the run is recorded (`error`/`unhealthy`/`skipped` with the cause), nothing crashes, nothing destructive
// happens half-way, no alert is lost or sent twice, and the next run heals.
import assert from "node:assert/strict";
import type { Hono } from "hono";
import { type Simulator, startSimulator } from "../../dev/evolution_sim/app.ts";
import { type Receivers, startReceivers } from "../../dev/receivers.ts";
import type { Deps } from "../../shared/deps.ts";
import { EvolutionClient } from "../../shared/evolution/client.ts";
import { type JobRunResponse, runJob } from "../../shared/jobs/runner.ts";
import { createOpsApp } from "../../shared/ops/app.ts";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../../shared/naming.ts";
import {
  createTenant,
  forgetServers,
  liveNames,
  stack,
  testConfig,
  testDeps,
  testSql,
  uniqueSlug,
} from "../_helpers.ts";
import { JOBS, matrixInput } from "./_jobs.ts";
import { FAULT_SIM_KEY, leaks, MIGRATE_TARGET_KEY, raw, type Secret, stackSecrets } from "./_matrix.ts";

const TIMEOUT_MS = 300;

type FaultName = "down" | "slow" | "hang" | "401" | "500" | "malformed" | "errorQuirk" | "reset";

/** Each Evolution fault: how to inject it, and the error code the jobs must report as the cause. */
const FAULTS: Array<{ name: FaultName; cause: RegExp; inject(sim: Simulator): void }> = [
  { name: "down", cause: /unreachable|refused|not reachable/, inject: (s) => s.control.setDown(true) },
  { name: "slow", cause: /timeout|did not answer in/, inject: (s) => s.control.setLatency(TIMEOUT_MS * 4) },
  { name: "hang", cause: /timeout|did not answer in/, inject: (s) => s.control.fault({ kind: "timeout" }) },
  { name: "401", cause: /unauthorized|answered 401/, inject: (s) => s.control.fault({ kind: "status401" }) },
  { name: "500", cause: /server_error|answered 500/, inject: (s) => s.control.fault({ kind: "status500" }) },
  { name: "malformed", cause: /bad_response|not JSON/, inject: (s) => s.control.fault({ kind: "malformed" }) },
  {
    name: "errorQuirk",
    cause: /bad_response|does not match the contract|\[object Object\]/,
    inject: (s) => s.control.fault({ kind: "errorQuirk" }),
  },
  { name: "reset", cause: /unreachable|reset|not reachable/, inject: (s) => s.control.fault({ kind: "reset" }) },
];

interface World {
  sim: Simulator;
  target: Simulator;
  rx: Receivers;
  deps: Deps;
  ops: Hono;
  secrets: Secret[];
  close(): Promise<void>;
}

async function world(version: "2.3.7" | "1.8.6" = "2.3.7"): Promise<World> {
  const sim = await startSimulator({ port: 0, apiKey: FAULT_SIM_KEY, version, webhookRetryDelaysMs: [50] });
  const target = await startSimulator({ port: 0, apiKey: MIGRATE_TARGET_KEY, version, webhookRetryDelaysMs: [50] });
  const rx = await startReceivers();
  const env = {
    EVOLUTION_API_URL: sim.url,
    EVOLUTION_API_KEY: sim.apiKey,
    EVOLUTION_TIMEOUT_MS: String(TIMEOUT_MS),
    SLACK_WEBHOOK_URL: rx.slackUrl,
    ALERT_LOG: "false",
  };
  const evolution = new EvolutionClient(testConfig(env), {
    sql: testSql(),
    retry: { retries: 1, minDelayMs: 10, maxDelayMs: 20 },
    logs: { intervalMs: 50 },
  });
  const deps = testDeps({ env, evolution });
  const secrets = await stackSecrets([
    { name: "fault simulator key", value: FAULT_SIM_KEY },
    { name: "migrate target key", value: MIGRATE_TARGET_KEY },
  ]);
  return {
    sim,
    target,
    rx,
    deps,
    ops: createOpsApp(deps),
    secrets,
    async close() {
      await deps.evolution.flushLogs();
      await forgetServers(target.url);
      await sim.close();
      await target.close();
      await rx.close();
    },
  };
}

function clear(sim: Simulator) {
  sim.control.setDown(false);
  sim.control.setLatency(0);
  sim.control.clearFaults();
}

async function seedCorrect(w: World, slug: string, state: "open" | "close" = "open") {
  const hook = await w.deps.evolution.expectedWebhook(slug);
  w.sim.control.seedInstance(`revalya-${slug}`, { state, webhookUrl: hook.url, webhookHeaders: hook.headers });
}

async function run(w: World, job: string, input: Record<string, unknown>): Promise<JobRunResponse> {
  const def = JOBS[job];
  return await runJob(w.deps, def, { input: def.input.parse(input) as never, trigger: "test" });
}

/** Counts the Evolution calls made from now on (the client logs every call, failed ones included, to api_logs). */
async function evolutionCallsSince(): Promise<() => Promise<number>> {
  const [{ max }] = await testSql()<{ max: string | null }[]>`select max(id)::text as max from public.api_logs`;
  return async () => {
    const [{ n }] = await testSql()<{ n: number }[]>`
      select count(*)::int as n from public.api_logs
      where id > ${max ?? "0"}::bigint and service = 'whatsapp' and data ? 'attempts'`;
    return n;
  };
}

async function storedRun(runId: string) {
  const [row] = await testSql()<{ status: string; error: string | null; finished_at: Date | null }[]>`
    select status, error, finished_at from maintenance.job_runs where id = ${runId}`;
  return row;
}

async function configs(slugs: string[]) {
  return await testSql()<{ slug: string; config: unknown }[]>`
    select t.slug, ti.config from public.tenants t
    join public.tenant_integrations ti on ti.tenant_id = t.id where t.slug = any (${slugs}::text[]) order by t.slug`;
}

const instances = (sim: Simulator) =>
  sim.control.instances().map((i) => ({ ...i })).sort((a, b) => a.name.localeCompare(b.name));

async function opsCall(w: World, route: string, body: unknown) {
  const res = await w.ops.request(`/whatsapp-ops/${route}`, {
    method: "POST",
    headers: { "content-type": "application/json", apikey: w.deps.config.secretKey, "x-ops-actor": "reliability" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as Record<string, unknown> };
}

const slackTitles = (w: World, needle: string) =>
  w.rx.control.received("slack").map((m) => String(m.body.text)).filter((t) => t.includes(needle));

/**
 * One fault, end to end: a healthy tenant, a tenant whose instance delivers to the wrong webhook (an isolation fix
 * to apply) and an orphan past its grace period (a deletion to make); every job and every ops action under the
 * fault; then the fault cleared and the runs that heal.
 */
async function faultCase(w: World, t: Deno.TestContext, fault: (typeof FAULTS)[number] | null, v1 = false) {
  const label = fault?.name ?? (v1 ? "v18" : "none");
  // a timeout leaves the outcome of a call unknown (a slow delete may still land): migrate then keeps the new server
  const timedOut = fault?.name === "slow" || fault?.name === "hang";
  clear(w.sim);
  w.rx.control.reset();
  const ok = await createTenant({ prefix: `fx-${label.toLowerCase()}-ok` });
  const hooked = await createTenant({ prefix: `fx-${label.toLowerCase()}-hook` });
  const mover = await createTenant({ prefix: `fx-${label.toLowerCase()}-mv` });
  const slugs = [ok.slug, hooked.slug, mover.slug];
  await seedCorrect(w, ok.slug);
  await seedCorrect(w, mover.slug);
  w.sim.control.seedInstance(`revalya-${hooked.slug}`, {
    state: "open",
    webhookUrl: `${stack().webhookBaseUrl}/api/whatsapp/webhook/${ok.slug}`,
  });
  const orphan = `revalya-${uniqueSlug("fx-orphan")}`;
  w.sim.control.seedInstance(orphan, { state: "close" });
  // first sighting, then as if the grace period had passed
  await run(w, "orphan-cleanup", { apply: false });
  await testSql()`update maintenance.orphan_sightings set first_seen_at = now() - interval '25 hours'
    where instance_name = ${orphan}`;
  const beforeInstances = instances(w.sim);
  const beforeConfigs = await configs(slugs);
  // changes that succeeded (migrate's own steps are judged by its result and the rows below: it rolls back)
  const okChanges = async () =>
    (await testSql()<{ n: number }[]>`
      select count(*)::int as n from maintenance.actions_audit where result = 'ok' and action not like 'migrate.%'`)[0]
      .n;
  const auditBefore = await okChanges();

  if (fault) {
    fault.inject(w.sim);
    // every job of the registry, as far as it goes: its sample input, scoped to this case's tenants and applying
    // what it would change (where its input has those fields)
    for (const def of Object.values(JOBS)) {
      const job = def.name;
      const input = matrixInput(def, { tenants: slugs, apply: true });
      await t.step(`${label}: ${job} records the cause and changes nothing`, async () => {
        const calls = await evolutionCallsSince();
        const r = await run(w, job, input);
        const row = await storedRun(r.runId);
        assert.equal(row.status, r.status, "the stored row says what the response says");
        assert.ok(row.finished_at, "the run is completed, not left running");
        const text = JSON.stringify(r.report);
        if ((await calls()) > 0) {
          // it needed Evolution: the run says it failed (or that Evolution is unhealthy), naming the cause
          assert.ok(["error", "unhealthy"].includes(r.status), `${job} under ${label}: ${r.status} ${text}`);
          assert.match(text, fault.cause, `${job} names the cause in its report`);
          if (r.status === "error") assert.match(String(row.error), fault.cause, "and in the stored error");
          // a second run under the same fault: the same verdict (and no platform alert sent again: checked below)
          assert.equal((await run(w, job, input)).status, r.status);
        } else {
          assert.equal(r.status, "ok", `${job} does not need Evolution: ${text}`);
        }
        assert.deepEqual(leaks(text, w.secrets), [], "no secret in the report");
      });
    }
    // the runs above were scoped to this case's tenants: platform alerts are a full run's call
    await t.step(`${label}: a full health-check run raises evolution_down, once`, async () => {
      for (let i = 0; i < 2; i++) {
        const r = await run(w, "health-check", {});
        assert.equal(r.status, "unhealthy", JSON.stringify(r.report));
        assert.match(JSON.stringify(r.report), fault.cause, "it names the cause");
      }
    });
    const actions: Array<[string, Record<string, unknown>]> = [
      ["diagnose", { slug: ok.slug }],
      ["fix", { slug: hooked.slug }],
      ["reconnect", { slug: ok.slug }],
      ["reset", { slug: ok.slug, confirm: ok.slug, apply: true }],
      ["migrate", { slug: mover.slug, apiUrl: w.target.url, apiKey: MIGRATE_TARGET_KEY, apply: true }],
      ["status", { slug: ok.slug }],
    ];
    for (const [route, body] of actions) {
      await t.step(`${label}: whatsapp-ops /${route} answers, says why, and changes nothing`, async () => {
        const r = await opsCall(w, route, body);
        assert.ok(r.status < 500, `/${route}: ${r.status} ${r.text.slice(0, 300)}`);
        assert.deepEqual(leaks(r.text, w.secrets), [], "no secret in the answer");
        if (!["diagnose", "status"].includes(route)) {
          if (r.json.ok !== false || !fault.cause.test(r.text)) console.log(`/${route} under ${label}: ${r.text}`);
          assert.equal(r.json.ok, false, `/${route} did not succeed under the fault: ${r.text.slice(0, 300)}`);
          assert.match(r.text, fault.cause, `/${route} names the cause`);
        }
        if (route === "diagnose") assert.match(r.text, fault.cause, "the diagnosis names the cause");
      });
    }
    await t.step(`${label}: nothing destructive happened, on Evolution or in the database`, async () => {
      clear(w.sim);
      await w.sim.control.drain();
      if (fault.name === "slow") await new Promise((r) => setTimeout(r, TIMEOUT_MS * 5)); // late requests land
      const moverOld = `revalya-${mover.slug}`;
      const others = <T extends { name?: string; slug?: string }>(list: T[]) =>
        timedOut ? list.filter((i) => i.name !== moverOld && i.slug !== mover.slug) : list;
      assert.deepEqual(others(instances(w.sim)), others(beforeInstances), "the simulator's instances are as before");
      assert.deepEqual(others(await configs(slugs)), others(beforeConfigs), "the integration rows are as before");
      if (timedOut) {
        // migrate could not know whether the old instance was deleted: the tenant stays on the new server
        assert.deepEqual(instances(w.target).map((i) => i.name), [moverOld], "the tenant's instance is on the target");
        const [mv] = await configs([mover.slug]);
        assert.equal((mv.config as Record<string, unknown>).evolution_api_url, w.target.url);
      } else {
        assert.deepEqual(instances(w.target), [], "nothing left on the migrate target");
      }
      assert.equal(await okChanges(), auditBefore, "no audited change succeeded");
    });
  }

  await t.step(`${label}: the next runs heal`, async () => {
    clear(w.sim);
    const hc = await run(w, "health-check", { tenants: [ok.slug] });
    assert.equal(hc.status, "healthy", JSON.stringify(hc.report));
    await run(w, "health-check", {}); // the full run that resolves the platform alert
    const iso = await run(w, "isolation-audit", { apply: true, tenants: [ok.slug, hooked.slug] });
    assert.equal(iso.status, "ok", JSON.stringify(iso.report));
    const fixed = w.sim.control.instances().find((i) => i.name === `revalya-${hooked.slug}`)!;
    assert.equal(fixed.webhook?.url, (await w.deps.evolution.expectedWebhook(hooked.slug)).url);
    const orphans = await run(w, "orphan-cleanup", { apply: true });
    assert.equal(orphans.status, "ok", JSON.stringify(orphans.report));
    assert.deepEqual(orphans.report.deleted, [orphan]);
    assert.ok(!liveNames(w.sim).includes(orphan), "the orphan is deleted");
    const [{ n }] = await testSql()<{ n: number }[]>`
      select count(*)::int as n from maintenance.actions_audit
      where action = 'orphan.delete_instance' and result = 'ok' and before ->> 'instance' = ${orphan}`;
    assert.equal(n, 1, "deleted once, audited once");
    if (!timedOut) {
      const mv = await opsCall(w, "migrate", {
        slug: mover.slug,
        apiUrl: w.target.url,
        apiKey: MIGRATE_TARGET_KEY,
        apply: true,
      });
      assert.deepEqual(leaks(mv.text, w.secrets), [], "no secret in the answer");
      // v1.8 has no custom webhook headers: the new instance carries the tenant's token in its URL, so it moves too
      assert.equal(mv.json.result, "ok", mv.text);
      assert.ok(liveNames(w.target).includes(`revalya-${mover.slug}`), "moved");
    }
    if (fault) {
      assert.deepEqual(
        slackTitles(w, "Evolution API is down").map((m) => m.replace(/^\S+ /, "")),
        ["[FIRING] Evolution API is down", "[RESOLVED] Evolution API is down"],
        "the platform alert fired once (not per run) and resolved once",
      );
    }
  });
  // leave nothing behind for the other tests: instances and rows of this case
  for (const name of [...slugs.map((s) => `revalya-${s}`), orphan]) {
    await w.deps.evolution.deleteInstance(name).catch(() => {});
  }
  for (const i of w.target.control.instances()) {
    await w.deps.evolution.withCredentials(w.target.url, MIGRATE_TARGET_KEY).deleteInstance(i.name).catch(() => {});
  }
  await testSql()`delete from public.tenants where slug = any (${slugs}::text[])`;
}

for (const fault of FAULTS) {
  Deno.test(`Evolution ${fault.name}: every job and ops action records the cause, changes nothing, and heals`, async (t) => {
    const w = await world();
    try {
      await faultCase(w, t, fault);
    } finally {
      clear(w.sim);
      await w.close();
    }
  });
}

Deno.test("a v1.8 Evolution server: every job and the fixes work as on v2", async (t) => {
  const w = await world("1.8.6");
  try {
    await faultCase(w, t, null, true);
  } finally {
    await w.close();
  }
});

Deno.test("Slack and the email API down, then back: every alert and report is delivered once, later", async (t) => {
  const sim = await startSimulator({ port: 0, apiKey: FAULT_SIM_KEY });
  const rx = await startReceivers();
  const env = {
    EVOLUTION_API_URL: sim.url,
    EVOLUTION_API_KEY: sim.apiKey,
    EVOLUTION_TIMEOUT_MS: String(TIMEOUT_MS),
    SLACK_WEBHOOK_URL: rx.slackUrl,
    ALERT_EMAIL_TO: "ops@example.com",
    EMAIL_API_URL: rx.emailUrl,
    EMAIL_API_KEY: rx.emailApiKey,
    ALERT_LOG: "false",
  };
  const deps = testDeps({ env });
  const w = { deps } as World;
  const { slug } = await createTenant({ prefix: "fx-notify" });
  const titles = (ch: "slack" | "email") =>
    rx.control.received(ch).map((m) => String(ch === "slack" ? m.body.text : m.body.subject))
      .filter((x) => x.includes("Evolution API is down") || x.includes("Weekly WhatsApp report"));
  try {
    const hook = await deps.evolution.expectedWebhook(slug);
    sim.control.seedInstance(`revalya-${slug}`, { state: "open", webhookUrl: hook.url, webhookHeaders: hook.headers });
    await t.step("both channels down: the runs succeed and the notifications wait in the outbox", async () => {
      rx.control.failNext("slack", 1000);
      rx.control.failNext("email", 1000, { status: 503 });
      sim.control.setDown(true);
      const hc = await run(w, "health-check", {}); // a full run: platform alerts are raised by full runs only
      assert.equal(hc.status, "unhealthy");
      const wr = await run(w, "weekly-report", { days: 1 });
      assert.equal(wr.status, "ok", JSON.stringify(wr.report));
      const rows = await testSql()<{ channel: string; status: string; last_error: string | null }[]>`
        select channel, status, last_error from maintenance.notification_outbox
        where created_at > now() - interval '1 minute' and status = 'pending'
          and (payload ->> 'title' like '%Evolution API is down%' or payload ->> 'title' like 'Weekly WhatsApp report%')
        order by id`;
      assert.deepEqual(
        rows.map((r) => r.channel).sort(),
        ["email", "email", "slack", "slack"],
        "one alert and one report per channel, pending",
      );
      assert.ok(rows.every((r) => r.last_error), "with the delivery error");
      assert.deepEqual([titles("slack"), titles("email")], [[], []]);
    });
    await t.step("channels and Evolution back: the next run delivers each once, in order", async () => {
      rx.control.failNext("slack", 0);
      rx.control.failNext("email", 0);
      sim.control.setDown(false);
      await testSql()`update maintenance.notification_outbox set next_attempt_at = now() where status = 'pending'`;
      const hc = await run(w, "health-check", { tenants: [slug] });
      assert.equal(hc.status, "healthy", JSON.stringify(hc.report));
      await run(w, "health-check", {}); // the full run that resolves the platform alert
      await run(w, "health-check", {}); // a second drain sends nothing twice
      for (const ch of ["slack", "email"] as const) {
        const got = titles(ch).map((x) => x.replace(/^\S+ /, "").replace(/^\[(CRITICAL|INFO|WARNING)\] /, ""));
        assert.deepEqual(
          got.filter((x) => x.includes("Evolution")),
          ["[FIRING] Evolution API is down", "[RESOLVED] Evolution API is down"],
          `${ch}: the alert fired and resolved once each, in order`,
        );
        assert.equal(got.filter((x) => x.includes("Weekly")).length, 1, `${ch}: the report once`);
      }
    });
  } finally {
    await sim.close();
    await rx.close();
    await testSql()`delete from public.tenants where slug = ${slug}`;
  }
});

Deno.test("whatsapp-webhook: its database connections killed, the next requests are stored", async (t) => {
  const { slug } = await createTenant({ prefix: "fx-whdb" });
  const token = await webhookToken(slug, stack().webhookSecret);
  const send = (i: number) =>
    raw("whatsapp-webhook", {
      path: `/api/whatsapp/webhook/${slug}`,
      key: null,
      headers: { "content-type": "application/json", [WEBHOOK_TOKEN_HEADER]: token },
      body: JSON.stringify({
        event: "connection.update",
        instance: `revalya-${slug}`,
        data: { state: i % 2 ? "open" : "close" },
        date_time: new Date(Date.UTC(2030, 0, 1, 0, i)).toISOString(),
      }),
    });
  try {
    for (let round = 1; round <= 3; round++) {
      await t.step(`round ${round}: terminate the functions' backends, then post`, async () => {
        assert.equal((await send(round * 10)).status, 200, "a request before: the receiver holds a connection");
        const killed = await testSql()<{ ok: boolean }[]>`
          select pg_terminate_backend(pid) as ok from pg_stat_activity
          where application_name = 'canais-maintenance' and pid <> pg_backend_pid()`;
        assert.ok(killed.length > 0, "the receiver had connections to kill");
        const r = await send(round);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.duplicate, false);
      });
    }
    const [{ n }] = await testSql()<{ n: number }[]>`
      select count(*)::int as n from public.api_logs where tenant_slug = ${slug} and event = 'connection.update'`;
    assert.equal(n, 6, "every event stored once");
  } finally {
    await testSql()`delete from public.tenants where slug = ${slug}`;
  }
});

async function pgCtl(args: string[]) {
  const pgdata = `${stack().dataDir}/pg`;
  const bin = "/usr/lib/postgresql/15/bin/pg_ctl";
  const root = Deno.uid() === 0;
  const out = await new Deno.Command(root ? "runuser" : bin, {
    // -l: the server must not inherit our pipes (output() would wait for it to exit)
    args: root
      ? ["-u", "postgres", "--", bin, "-D", pgdata, "-l", stack().logs.postgres, ...args]
      : ["-D", pgdata, "-l", stack().logs.postgres, ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

Deno.test("Postgres restarted between runs: the functions, the scheduled path and the test client work on", async (t) => {
  const before = await raw("cleanup-logs", {
    headers: { "content-type": "application/json" },
    body: '{"dryRun":true}',
  });
  assert.equal(before.status, 200, before.text);
  await pgCtl(["restart", "-m", "fast", "-w", "-t", "60"]);
  await t.step("the next job run through the functions works and is recorded", async () => {
    for (const [job, body] of Object.entries(JOB_INPUTS)) {
      const r = await raw(job, { headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      assert.equal(r.status, 200, `${job}: ${r.text.slice(0, 300)}`);
      assert.notEqual(r.json.status, "error", `${job}: ${r.text.slice(0, 300)}`);
      const [row] = await testSql()`select status from maintenance.job_runs where id = ${String(r.json.runId)}`;
      assert.equal(row?.status, r.json.status);
    }
  });
  await t.step("the scheduled path (pg_net worker) delivers a call queued after the restart", async () => {
    const [{ id }] = await testSql()<{ id: number }[]>`
      select maintenance.invoke_function('weekly-report', '{"days":1}'::jsonb) as id`;
    let status: number | null = null;
    for (let i = 0; i < 100 && status === null; i++) {
      const [r] = await testSql()<{ status_code: number | null }[]>`
        select status_code from net._http_response where id = ${id}`;
      status = r?.status_code ?? null;
      if (status === null) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(status, 202, "the queued call got through (answered 202: the run goes on in the background)");
  });
  await t.step("the webhook receiver stores events again", async () => {
    const { slug } = await createTenant({ prefix: "fx-pgr" });
    const token = await webhookToken(slug, stack().webhookSecret);
    const r = await raw("whatsapp-webhook", {
      path: `/api/whatsapp/webhook/${slug}`,
      key: null,
      headers: { "content-type": "application/json", [WEBHOOK_TOKEN_HEADER]: token },
      body: JSON.stringify({ event: "connection.update", instance: `revalya-${slug}`, data: { state: "open" } }),
    });
    assert.equal(r.status, 200, r.text);
    await testSql()`delete from public.tenants where slug = ${slug}`;
  });
});

/** Holds `public.api_logs` in ACCESS EXCLUSIVE mode until `release()`: every job blocks before it can finish. */
async function holdApiLogs() {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const done = testSql().begin(async (tx) => {
    await tx`lock table public.api_logs in access exclusive mode`;
    locked();
    await released;
  });
  await isLocked;
  return {
    async release() {
      release();
      await done;
    },
  };
}

/** Each job's sample input, scoped to no real tenant where it takes a tenant list. */
const JOB_INPUTS: Record<string, Record<string, unknown>> = Object.fromEntries(
  Object.values(JOBS).map((def) => [def.name, matrixInput(def, { tenants: ["no-such-tenant-r9"] })]),
);

Deno.test("a job killed mid-run: the next run is skipped while its lease holds, runs after expiry and reports it", async (t) => {
  for (const [job, input] of Object.entries(JOB_INPUTS)) {
    await t.step(job, async () => {
      const since = new Date();
      const lock = await holdApiLogs();
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-check", "tests/reliability/_run_job.ts", job, JSON.stringify(input)],
        stdout: "null",
        stderr: "null",
      }).spawn();
      let killedId: string | null = null;
      try {
        for (let i = 0; i < 300 && !killedId; i++) {
          const [row] = await testSql()<{ id: string }[]>`
            select id from maintenance.job_runs
            where job = ${job} and status = 'running' and trigger = 'test' and started_at >= ${since}`;
          killedId = row?.id ?? null;
          if (!killedId) await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(killedId, "the child started its run");
        await new Promise((r) => setTimeout(r, 200)); // well into the job
        child.kill("SIGKILL");
        await child.status;
      } finally {
        await lock.release();
      }
      const deps = testDeps();
      const def = JOBS[job];
      const skipped = await runJob(deps, def, { input: def.input.parse(input) as never, trigger: "test" });
      assert.equal(skipped.status, "skipped");
      assert.equal(skipped.report.runningRunId, killedId, "the skip names the run holding the lease");
      await testSql()`update maintenance.job_leases set expires_at = now() - interval '1 second' where job = ${job}`;
      const next = await runJob(deps, def, { input: def.input.parse(input) as never, trigger: "test" });
      assert.notEqual(next.status, "skipped");
      assert.notEqual(next.status, "error", JSON.stringify(next.report));
      assert.deepEqual((next.report.abandonedRun as { runId: string }).runId, killedId, "the takeover is reported");
      const [killed] = await testSql()<
        { status: string }[]
      >`select status from maintenance.job_runs where id = ${killedId}`;
      assert.equal(killed.status, "running", "the killed run's row stays as it was left");
      const [lease] = await testSql()`select 1 from maintenance.job_leases where job = ${job}`;
      assert.equal(lease, undefined, "the lease is released after the healthy run");
    });
  }
});

Deno.test("two runs of the same job at once: one runs, the other is recorded skipped naming it", async (t) => {
  const deps = testDeps();
  for (const [job, input] of Object.entries(JOB_INPUTS)) {
    await t.step(job, async () => {
      const def = JOBS[job];
      const lock = await holdApiLogs();
      const runs = [0, 1].map(() => runJob(deps, def, { input: def.input.parse(input) as never, trigger: "test" }));
      let first: JobRunResponse;
      try {
        first = await Promise.race(runs); // the winner cannot finish while api_logs is held
      } finally {
        await lock.release();
      }
      const [a, b] = await Promise.all(runs);
      assert.equal(first.status, "skipped");
      const ran = a.runId === first.runId ? b : a;
      assert.notEqual(ran.status, "skipped");
      assert.notEqual(ran.status, "error", JSON.stringify(ran.report));
      assert.equal(first.report.runningRunId, ran.runId);
      const rows = await testSql()<{ status: string }[]>`
        select status from maintenance.job_runs where id in (${a.runId}, ${b.runId}) order by status = 'skipped'`;
      assert.deepEqual(rows.map((r) => r.status), [ran.status, "skipped"]);
    });
  }
  await t.step("over HTTP: two weekly-report calls at once", async () => {
    const lock = await holdApiLogs();
    const calls = [0, 1].map(() =>
      raw("weekly-report", { headers: { "content-type": "application/json" }, body: '{"days":1}' })
    );
    let first;
    try {
      first = await Promise.race(calls);
    } finally {
      await lock.release();
    }
    const [a, b] = await Promise.all(calls);
    assert.equal(first.json.status, "skipped");
    assert.deepEqual([a.status, b.status], [200, 200]);
    assert.deepEqual([a.json.status, b.json.status].sort(), ["ok", "skipped"]);
  });
});
