// Contract tests: the Evolution client against the in-process simulator, every operation and every error case of docs/EVOLUTION.md,
// in v2.3.7 and v1.8.6 modes; plus the api_logs rows the client writes (real local Postgres).
import assert from "node:assert/strict";
import { type Simulator, type SimVersion, startSimulator } from "../dev/evolution_sim/app.ts";
import { EvolutionClient, EvolutionError, type EvolutionErrorCode } from "../shared/evolution/client.ts";
import { lifecycleEvents } from "../shared/evolution/events.ts";
import { ValidationError } from "../shared/errors.ts";
import { WEBHOOK_TOKEN_HEADER, WEBHOOK_TOKEN_PARAM, webhookToken } from "../shared/naming.ts";
import { testConfig, testSql, uniqueSlug } from "./_helpers.ts";

function clientFor(sim: Simulator, options: { sql?: boolean; timeoutMs?: number } = {}) {
  const config = testConfig({
    EVOLUTION_API_URL: sim.url,
    EVOLUTION_API_KEY: sim.apiKey,
    EVOLUTION_TIMEOUT_MS: String(options.timeoutMs ?? 2000),
  });
  return new EvolutionClient(config, {
    sql: options.sql ? testSql() : undefined,
    retry: { retries: 2, minDelayMs: 5, maxDelayMs: 20 },
  });
}

async function rejects(p: Promise<unknown>, code: EvolutionErrorCode, status?: number | null): Promise<EvolutionError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof EvolutionError, `expected EvolutionError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (status !== undefined) assert.equal(e.status, status);
    return e;
  }
  assert.fail(`expected an EvolutionError ${code}`);
}

async function withSim(version: SimVersion, fn: (sim: Simulator) => Promise<void>) {
  const sim = await startSimulator({ version, timeScale: 0.05 }); // the real behaviour, its delays compressed
  try {
    await fn(sim);
  } finally {
    await sim.close();
  }
}

for (const version of ["2.3.7", "1.8.6"] as const) {
  const v1 = version === "1.8.6";

  Deno.test(`EvolutionClient (${version}) runs every operation against the simulator`, async (t) => {
    await withSim(version, async (sim) => {
      const evo = clientFor(sim);
      const slug = uniqueSlug("evo");
      const name = `revalya-${slug}`;
      const config = testConfig();

      await t.step("serverInfo() reads the version", async () => {
        const info = await evo.serverInfo();
        assert.equal(info.version, version);
        assert.equal(info.clientName, v1 ? null : "evolution");
      });

      await t.step("createInstance() names the instance and sets the tenant's webhook with its token", async () => {
        const created = await evo.createInstance(slug);
        assert.deepEqual({ name: created.name, state: created.state, qr: created.qr }, {
          name,
          state: "close",
          qr: null,
        });
        assert.ok(created.id);
        const [inst] = sim.control.instances().filter((i) => i.name === name);
        const token = await webhookToken(slug, config.webhookSecret);
        const url = `${config.webhookBaseUrl}/api/whatsapp/webhook/${slug}`;
        // v1.8 has no custom webhook headers: its token rides in the URL; v2 stores the token header.
        assert.equal(inst.webhook?.url, v1 ? `${url}?${WEBHOOK_TOKEN_PARAM}=${token}` : url);
        assert.deepEqual(inst.webhook?.events, lifecycleEvents(v1 ? "1" : "2"));
        assert.equal(inst.webhook?.enabled, true);
        assert.deepEqual(inst.webhook?.headers, v1 ? null : { [WEBHOOK_TOKEN_HEADER]: token });
      });

      await t.step("createInstance({qrcode:true}) answers connecting with a QR code", async () => {
        const other = await evo.createInstance(uniqueSlug("qr"), { qrcode: true });
        assert.equal(other.state, v1 ? "close" : "connecting"); // v1.8 answers status "created"
        assert.equal(other.qr?.count, 1);
        assert.ok(other.qr?.base64?.startsWith("data:image/png;base64,"));
      });

      await t.step("fetchInstances() lists all in one call, or the one named", async () => {
        sim.control.resetStats();
        const all = await evo.fetchInstances();
        assert.equal(all.length, 2);
        assert.equal(sim.control.stats().calls.fetchInstances, 1);
        const one = await evo.fetchInstances({ instanceName: name });
        assert.equal(one.length, 1);
        assert.equal(one[0].name, name);
        assert.equal(one[0].state, "close");
        assert.equal(one[0].integration, v1 ? null : "WHATSAPP-BAILEYS");
      });

      await t.step("connectionState(), connect() and a scan", async () => {
        assert.equal(await evo.connectionState(name), "close");
        const r = await evo.connect(name);
        assert.equal(r.kind, "qr");
        assert.equal(r.kind === "qr" && r.qr.count, 1);
        assert.equal(await evo.connectionState(name), "connecting");
        sim.control.scan(name);
        assert.equal(await evo.connectionState(name), "open");
        assert.deepEqual(await evo.connect(name), { kind: "state", state: "open" });
        const [summary] = await evo.fetchInstances({ instanceName: name });
        assert.equal(summary.state, "open");
        assert.match(summary.ownerJid ?? "", /@s\.whatsapp\.net$/);
      });

      await t.step(`restart() uses ${v1 ? "PUT" : "POST"} and reports the state`, async () => {
        sim.control.resetStats();
        assert.deepEqual(await evo.restart(name), { kind: "state", state: "open" });
        assert.equal(sim.control.stats().calls.restart, 1);
        assert.equal(sim.control.stats().calls.notFound, undefined);
      });

      await t.step("setWebhook() and findWebhook() round-trip", async () => {
        const url = "http://127.0.0.1:9/hook";
        const set = await evo.setWebhook(name, { url, events: ["CONNECTION_UPDATE"], byEvents: true });
        assert.equal(set.url, url);
        assert.equal(set.byEvents, true);
        assert.equal(set.enabled, true);
        const found = await evo.findWebhook(name);
        assert.deepEqual(found && { url: found.url, events: found.events, byEvents: found.byEvents }, {
          url,
          events: ["CONNECTION_UPDATE"],
          byEvents: true,
        });
        const expected = await evo.expectedWebhook(slug);
        await evo.setWebhook(name, expected);
        assert.equal((await evo.findWebhook(name))?.url, expected.url);
      });

      await t.step("findWebhook() is null for an instance that never had one", async () => {
        sim.control.seedInstance("revalya-nohook");
        assert.equal(await evo.findWebhook("revalya-nohook"), null);
      });

      await t.step("logout() closes an open instance; a closed one is a 400 with the array message", async () => {
        await evo.logout(name);
        assert.equal(await evo.connectionState(name), "close");
        const e = await rejects(evo.logout(name), "bad_request", 400);
        assert.deepEqual(e.messages, [`The "${name}" instance is not connected`]);
        assert.equal(e.operation, "logout");
        assert.equal(e.instance, name);
      });

      await t.step(
        "deleteInstance() removes it: the name stays taken until Evolution's cleanup, then 404",
        async () => {
          await evo.deleteInstance(name);
          assert.equal((await evo.waitUntilGone(name, { timeoutMs: 2000 })).gone, true);
          await rejects(evo.connectionState(name), "not_found", 404);
        },
      );
    });
  });

  Deno.test(`EvolutionClient (${version}) maps every error case of the contract to a typed error`, async (t) => {
    await withSim(version, async (sim) => {
      const evo = clientFor(sim, { timeoutMs: 300 });
      const name = "revalya-errors";
      sim.control.seedInstance(name, { state: "open" });

      await t.step("unknown instance → not_found with the array message", async () => {
        const e = await rejects(evo.connectionState("revalya-nope"), "not_found", 404);
        assert.deepEqual(e.messages, ['The "revalya-nope" instance does not exist']);
      });

      await t.step("wrong key → unauthorized with the string message; unknown instance + wrong key → 404", async () => {
        const bad = evo.withCredentials(sim.url, "wrong-key");
        const e = await rejects(bad.connectionState(name), "unauthorized", 401);
        assert.deepEqual(e.messages, ["Unauthorized"]);
        await rejects(bad.connectionState("revalya-nope"), "not_found", 404);
        await rejects(bad.fetchInstances(), "unauthorized", 401);
      });

      await t.step("create with a name in use → name_in_use (403), even with a wrong key", async () => {
        const e = await rejects(evo.createInstance("errors"), "name_in_use", 403);
        assert.deepEqual(e.messages, [`This name "${name}" is already in use.`]);
        await rejects(evo.withCredentials(sim.url, "wrong").createInstance("errors"), "name_in_use", 403);
      });

      await t.step("fetchInstances with an unknown name → not_found (1.8 answers it as a 500)", async () => {
        const e = await rejects(evo.fetchInstances({ instanceName: "revalya-ghost" }), "not_found", v1 ? 500 : 404);
        if (!v1) assert.deepEqual(e.messages, ['Instance "revalya-ghost" not found']);
      });

      await t.step("schema validation 400 → bad_request with the server's array message", async () => {
        const e = await rejects(evo.setWebhook(name, { url: "http://x.test/h", events: ["NOPE"] }), "bad_request", 400);
        assert.match(e.messages[0], /events\[0\] is not one of enum values/);
      });

      await t.step("5xx on a read is retried, then server_error", async () => {
        sim.control.resetStats();
        sim.control.fault({ route: "connectionState", kind: "status500" });
        const e = await rejects(evo.connectionState(name), "server_error", 500);
        assert.deepEqual(e.messages, ["Error: internal server error"]);
        assert.equal(sim.control.stats().calls.connectionState, 3);
        sim.control.clearFaults();
      });

      await t.step("a transient 5xx on a read is recovered by the retry", async () => {
        sim.control.fault({ route: "fetchInstances", kind: "status500", count: 1 });
        assert.equal((await evo.fetchInstances()).length, 1);
      });

      await t.step("5xx on a write is not retried", async () => {
        sim.control.resetStats();
        sim.control.fault({ route: "logout", kind: "status500" });
        await rejects(evo.logout(name), "server_error", 500);
        assert.equal(sim.control.stats().calls.logout, 1);
        sim.control.clearFaults();
      });

      await t.step("intermittent 401 fault → unauthorized, not retried", async () => {
        sim.control.resetStats();
        sim.control.fault({ kind: "status401", count: 1 });
        await rejects(evo.connectionState(name), "unauthorized", 401);
        assert.equal(sim.control.stats().total, 1);
      });

      await t.step("no answer → timeout, not retried", async () => {
        sim.control.resetStats();
        sim.control.fault({ route: "connectionState", kind: "timeout", count: 1 });
        const e = await rejects(evo.connectionState(name), "timeout", null);
        assert.match(e.message, /did not answer in 300 ms/);
        assert.equal(sim.control.stats().calls.connectionState, 1);
      });

      await t.step("a malformed body → bad_response", async () => {
        sim.control.fault({ route: "connectionState", kind: "malformed", count: 1 });
        await rejects(evo.connectionState(name), "bad_response", 200);
      });

      await t.step("connection reset → unreachable (a read retries through it)", async () => {
        // (Deno's fetch itself resends a request once when a reused keep-alive connection drops: keep faulting.)
        sim.control.fault({ route: "logout", kind: "reset" });
        await rejects(evo.logout(name), "unreachable", null);
        sim.control.clearFaults();
        sim.control.fault({ route: "connectionState", kind: "reset", count: 1 });
        assert.equal(await evo.connectionState(name), "open");
      });

      await t.step("server down → unreachable", async () => {
        sim.control.setDown(true);
        await rejects(evo.fetchInstances(), "unreachable", null);
        sim.control.setDown(false);
        assert.equal((await evo.fetchInstances()).length, 1);
      });

      await t.step("the 200-with-{error:true} quirk of connect/restart → server_error", async () => {
        sim.control.fault({ route: "connect", kind: "errorQuirk", count: 1 });
        sim.control.setState(name, "close");
        await rejects(evo.connect(name), "server_error", 200);
        if (!v1) {
          // v2: restart of a closed instance answers {error:true, message:"[object Object]"} with 200.
          const e = await rejects(evo.restart(name), "server_error", 200);
          assert.deepEqual(e.messages, ["[object Object]"]);
        }
      });

      await t.step("a 2xx that breaks the contract → bad_response", async () => {
        sim.control.fault({ route: "fetchInstances", kind: "errorQuirk", count: 1 });
        await rejects(evo.fetchInstances(), "bad_response", 200);
      });

      await t.step("the API key never appears in an error", async () => {
        sim.control.setDown(true);
        const e = await rejects(evo.fetchInstances(), "unreachable");
        sim.control.setDown(false);
        assert.ok(!JSON.stringify({ m: e.message, s: e.messages }).includes(sim.apiKey));
      });
    });
  });
}

Deno.test("EvolutionClient.createInstance() rejects an invalid slug before calling Evolution", async () => {
  await withSim("2.3.7", async (sim) => {
    const evo = clientFor(sim);
    for (const bad of ["../x", "a%2Fb", "ACME", "аcme", "x".repeat(10_000)]) {
      await assert.rejects(evo.createInstance(bad), (e) => e instanceof ValidationError && /'slug'/.test(e.message));
    }
    assert.equal(sim.control.stats().total, 0);
  });
});

Deno.test("EvolutionClient logs every call to api_logs in batches, never with the API key", async () => {
  await withSim("2.3.7", async (sim) => {
    const evo = clientFor(sim, { sql: true });
    const slug = uniqueSlug("log");
    const name = `revalya-${slug}`;
    await evo.createInstance(slug);
    await evo.connectionState(name);
    await evo.logout(name).catch(() => {});
    // Another server through withCredentials shares the same buffer.
    const other = await startSimulator({ webhookRetryDelaysMs: [] });
    try {
      other.control.seedInstance(name);
      await evo.withCredentials(other.url, other.apiKey).connectionState(name);
    } finally {
      await other.close();
    }
    const sql = testSql();
    const before = await sql`select count(*)::int as n from public.api_logs where tenant_slug = ${slug}`;
    assert.equal(before[0].n, 0, "rows are buffered, not written per call");
    await evo.flushLogs();
    const rows = await sql<
      {
        event: string;
        status: string;
        error_type: string | null;
        response_time: number;
        service: string;
        data: string;
      }[]
    >`
      select event, status, error_type, response_time, service, data::text as data from public.api_logs
      where tenant_slug = ${slug} order by id`;
    assert.deepEqual(rows.map((r) => [r.event, r.status, r.error_type]), [
      ["create_instance", "success", null],
      ["connection_state", "success", null],
      ["logout", "error", "bad_request"],
      ["connection_state", "success", null],
    ]);
    assert.ok(rows.every((r) => r.service === "whatsapp" && Number.isInteger(r.response_time) && r.response_time >= 0));
    assert.ok(rows.every((r) => !r.data.includes(sim.apiKey) && !r.data.includes(other.apiKey)));
    // the version detection before create (a listing of a name that does not exist) is logged too, no tenant
    const probe = await sql`select count(*)::int as n from public.api_logs
      where event = 'fetch_instances' and data->>'instance' = 'canais-version-probe-0' and tenant_slug is null`;
    assert.ok(probe[0].n >= 1);
  });
});

Deno.test("EvolutionClient.withCredentials() points a client at another server, which learns its own version", async () => {
  await withSim("2.3.7", async (a) => {
    const b = await startSimulator({ version: "1.8.6", webhookRetryDelaysMs: [], timeScale: 0.05 });
    try {
      a.control.seedInstance("revalya-a");
      b.control.seedInstance("revalya-b", { state: "open" });
      const first = clientFor(a);
      assert.equal((await first.serverInfo()).version, "2.3.7");
      const evo = first.withCredentials(b.url, b.apiKey);
      assert.equal(evo.baseUrl, b.url);
      // Its version is its own, learnt without GET /: restart goes out as PUT to the v1.8 server.
      assert.deepEqual(await evo.restart("revalya-b"), { kind: "state", state: "open" });
      assert.equal(await evo.knownMajor(), "1");
      assert.equal(await first.knownMajor(), "2");
      assert.deepEqual((await evo.fetchInstances()).map((i) => i.name), ["revalya-b"]);
    } finally {
      await b.close();
    }
  });
});
