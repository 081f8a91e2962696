// The simulator itself, against the contract: raw HTTP (guard order, error envelopes, shapes), webhook delivery
// (envelope, byEvents suffixes, headers, retries, no-retry 4xx), the QR limit, v1.8 mode and the HTTP control API.
// The other evolution_sim_*_test.ts files cover deletion, state, sockets, the server and the scenario library.
import assert from "node:assert/strict";
import { call, receiver, sim, timed } from "./_evolution_sim.ts";

Deno.test("simulator guards in the order 404 → 403 → 401 with the contract's envelopes", async () => {
  const s = await sim();
  try {
    s.control.seedInstance("revalya-acme", { token: "INSTANCE-TOKEN" });
    assert.deepEqual(await call(s.url, "GET", "/instance/connectionState/revalya-ghost", "wrong"), {
      status: 404,
      body: { status: 404, error: "Not Found", response: { message: ['The "revalya-ghost" instance does not exist'] } },
    });
    assert.deepEqual(
      await call(s.url, "POST", "/instance/create", null, {
        instanceName: "revalya-acme",
        integration: "WHATSAPP-BAILEYS",
      }),
      {
        status: 403,
        body: {
          status: 403,
          error: "Forbidden",
          response: { message: ['This name "revalya-acme" is already in use.'] },
        },
      },
    );
    assert.deepEqual(await call(s.url, "GET", "/instance/connectionState/revalya-acme", null), {
      status: 401,
      body: { status: 401, error: "Unauthorized", response: { message: "Unauthorized" } },
    });
    // The instance's own token opens its routes, and fetchInstances shows only its instances.
    assert.equal((await call(s.url, "GET", "/instance/connectionState/revalya-acme", "INSTANCE-TOKEN")).status, 200);
    s.control.seedInstance("revalya-other");
    const mine = await call(s.url, "GET", "/instance/fetchInstances", "INSTANCE-TOKEN");
    assert.deepEqual(mine.body.map((r: { name: string }) => r.name), ["revalya-acme"]);
    // ...but cannot create instances.
    const create = await call(s.url, "POST", "/instance/create", "INSTANCE-TOKEN", {
      instanceName: "revalya-new",
      integration: "WHATSAPP-BAILEYS",
    });
    assert.equal(create.status, 401);
  } finally {
    await s.close();
  }
});

Deno.test("simulator answers the other error cases like Evolution", async (t) => {
  const s = await sim();
  const k = s.apiKey;
  try {
    await t.step("unknown route or wrong method → 404 'Cannot METHOD url'", async () => {
      s.control.seedInstance("foo");
      assert.deepEqual((await call(s.url, "PUT", "/instance/restart/foo?x=1", k)).body.response.message, [
        "Cannot PUT /instance/restart/foo?x=1",
      ]);
    });
    await t.step("create without integration → 400 Invalid integration; events missing → 400 TypeError", async () => {
      const a = await call(s.url, "POST", "/instance/create", k, { instanceName: "x1" });
      assert.deepEqual([a.status, a.body.response.message], [400, ["Invalid integration"]]);
      const b = await call(s.url, "POST", "/instance/create", k, {
        instanceName: "x2",
        integration: "WHATSAPP-BAILEYS",
        webhook: { url: "http://127.0.0.1:9/h" },
      });
      assert.deepEqual([b.status, b.body.response.message], [
        400,
        ["Cannot read properties of undefined (reading 'length')"],
      ]);
      assert.equal((await call(s.url, "GET", "/instance/connectionState/x2", k)).status, 404, "rolled back");
    });
    await t.step("malformed JSON → 400 with a string message", async () => {
      const r = await call(s.url, "POST", "/instance/create", k, "{not json");
      assert.equal(r.status, 400);
      assert.equal(typeof r.body.response.message, "string");
    });
    await t.step("webhook events are enum-validated; enabled without events → 500 string message", async () => {
      const bad = await call(s.url, "POST", "/webhook/set/foo", k, {
        webhook: { enabled: true, url: "http://h.test", events: ["CONNECTION_UPDATE", "NOPE"] },
      });
      assert.equal(bad.status, 400);
      assert.match(
        bad.body.response.message[0],
        /^webhook\.events\[1\] is not one of enum values: APPLICATION_STARTUP/,
      );
      const missing = await call(s.url, "POST", "/webhook/set/foo", k, { webhook: { enabled: true, url: "http://h" } });
      assert.deepEqual([missing.status, missing.body.response.message], [
        500,
        "Cannot read properties of undefined (reading 'length')",
      ]);
      const noUrl = await call(s.url, "POST", "/webhook/set/foo", k, { webhook: { enabled: true, events: [] } });
      assert.deepEqual(noUrl.body.response.message, ['webhook requires property "url"']);
    });
    await t.step("fetchInstances rows carry the DB shape (token, _count, relations)", async () => {
      const [row] = (await call(s.url, "GET", "/instance/fetchInstances?instanceName=foo", k)).body;
      assert.equal(row.name, "foo");
      assert.equal(row.connectionStatus, "close");
      assert.equal(typeof row.token, "string");
      assert.deepEqual(row._count, { Message: 0, Contact: 0, Chat: 0 });
      assert.equal(row.Proxy, null);
    });
    await t.step(
      "connect on an open instance answers the state object; restart of close is the 200 quirk",
      async () => {
        assert.deepEqual((await call(s.url, "POST", "/instance/restart/foo", k)).body, {
          error: true,
          message: "[object Object]",
        });
        s.control.setState("foo", "open");
        assert.deepEqual((await call(s.url, "GET", "/instance/connect/foo", k)).body, {
          instance: { instanceName: "foo", state: "open" },
        });
      },
    );
  } finally {
    await s.close();
  }
});

Deno.test("simulator delivers webhooks with Evolution's envelope, byEvents suffixes and custom headers", async () => {
  const r = receiver();
  const s = await sim();
  try {
    const created = await call(s.url, "POST", "/instance/create", s.apiKey, {
      instanceName: "revalya-hook",
      integration: "WHATSAPP-BAILEYS",
      webhook: { url: `${r.url}/base`, byEvents: true, headers: { "x-webhook-token": "tok" }, events: [] },
    });
    assert.equal(created.status, 201);
    s.control.scan("revalya-hook");
    s.control.disconnect("revalya-hook", 401);
    await s.control.drain();
    const seen = r.got.map((g) => [g.path, g.body.event, (g.body.data as { state?: string } | null)?.state ?? null]);
    assert.deepEqual(seen, [
      ["/base/instance-create", "instance.create", null],
      ["/base/connection-update", "connection.update", "connecting"],
      ["/base/qrcode-updated", "qrcode.updated", null],
      ["/base/connection-update", "connection.update", "connecting"],
      ["/base/connection-update", "connection.update", "open"],
      ["/base/status-instance", "status.instance", null],
      ["/base/logout-instance", "logout.instance", null],
      ["/base/connection-update", "connection.update", "close"],
    ]);
    const open = r.got[4].body;
    assert.deepEqual(Object.keys(open).sort(), [
      "apikey",
      "data",
      "date_time",
      "destination",
      "event",
      "instance",
      "sender",
      "server_url",
    ]);
    assert.equal(open.instance, "revalya-hook");
    assert.equal(open.destination, `${r.url}/base`);
    assert.equal(open.apikey, null);
    assert.match(String(open.date_time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal((open.data as { statusReason: number }).statusReason, 200);
    assert.equal((r.got[7].body.data as { statusReason: number }).statusReason, 401);
    assert.ok(r.got.every((g) => g.headers.get("x-webhook-token") === "tok"));
    assert.ok(!("sender" in r.got[0].body), "no sender before the first open");
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("simulator retries failed deliveries with backoff, but never a 400/401/403/404/422", async () => {
  const r = receiver([500, 503]);
  const s = await sim();
  try {
    s.control.seedInstance("revalya-retry", { webhookUrl: r.url });
    s.control.setState("revalya-retry", "connecting");
    await s.control.drain();
    assert.deepEqual(s.control.deliveries().map((d) => [d.status, d.attempt]), [[500, 1], [503, 2], [200, 3]]);
    for (const status of [400, 401, 403, 404, 422]) {
      const r2 = receiver([status]);
      s.control.seedInstance("revalya-noretry", { webhookUrl: r2.url });
      s.control.setState("revalya-noretry", "open");
      await s.control.drain();
      assert.equal(r2.got.length, 1, `no retry after ${status}`);
      await r2.close();
    }
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("simulator gives up after the QR limit: qrcode.updated limit + connection.update refused 428", async () => {
  const r = receiver();
  const s = await sim("2.3.7", { qrIntervalMs: 5, qrLimit: 3 });
  try {
    s.control.seedInstance("revalya-qr", { webhookUrl: r.url });
    await call(s.url, "GET", "/instance/connect/revalya-qr", s.apiKey);
    for (let i = 0; i < 200 && s.control.instances()[0].state !== "close"; i++) {
      await new Promise((res) => setTimeout(res, 5));
    }
    await s.control.drain();
    const events = r.got.map((g) => g.body.event);
    assert.equal(events.filter((e) => e === "qrcode.updated").length, 4); // 3 QR codes + the limit message
    const last = r.got.at(-1)!.body;
    assert.deepEqual(last.data, { instance: "revalya-qr", state: "refused", statusReason: 428 });
    assert.equal(s.control.instances()[0].state, "close");
    // The stored status stays what the last QR wrote; memory says close (contract §5.2).
    const [row] = (await call(s.url, "GET", "/instance/fetchInstances?instanceName=revalya-qr", s.apiKey)).body;
    assert.equal(row.connectionStatus, "connecting");
    assert.equal(
      (await call(s.url, "GET", "/instance/connectionState/revalya-qr", s.apiKey)).body.instance.state,
      "close",
    );
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("simulator in v1.8 mode: flat bodies, PUT restart, object fetchInstances, its own event list", async () => {
  const r = receiver();
  const s = await sim("1.8.6");
  const k = s.apiKey;
  try {
    // The 2.x lifecycle names are not in 1.8's list: the create is refused with 1.8's enum message.
    const refused = await call(s.url, "POST", "/instance/create", k, {
      instanceName: "revalya-v1",
      webhook: r.url,
      events: ["CONNECTION_UPDATE", "LOGOUT_INSTANCE", "STATUS_INSTANCE"],
    });
    assert.equal(refused.status, 400);
    assert.match(
      refused.body.response.message[0],
      /^events\[1\] is not one of enum values: APPLICATION_STARTUP,.*CHAMA_AI_ACTION$/,
    );
    const created = await call(s.url, "POST", "/instance/create", k, {
      instanceName: "revalya-v1",
      webhook: r.url,
      events: ["CONNECTION_UPDATE", "QRCODE_UPDATED"],
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.instance.status, "created");
    assert.equal(typeof created.body.hash.apikey, "string");
    assert.equal((await call(s.url, "POST", "/instance/restart/revalya-v1", k)).status, 404);
    assert.equal((await call(s.url, "PUT", "/instance/restart/revalya-v1", k)).status, 200);
    const one = await call(s.url, "GET", "/instance/fetchInstances?instanceName=revalya-v1", k);
    assert.equal(Array.isArray(one.body), false);
    assert.equal(one.body.instance.instanceName, "revalya-v1");
    s.control.setState("revalya-v1", "open");
    await s.control.disconnect("revalya-v1");
    await s.control.drain();
    // status.instance cannot be subscribed to on 1.8; its connection.update carries the owner keys.
    assert.deepEqual(r.got.map((g) => g.body.event), ["connection.update", "connection.update"]);
    assert.ok(r.got.every((g) => !("apikey" in g.body)));
    const close = r.got[1].body.data as Record<string, unknown>;
    assert.deepEqual(Object.keys(close).sort(), [
      "instance",
      "profileName",
      "profilePictureUrl",
      "state",
      "statusReason",
      "wuid",
    ]);
    assert.deepEqual([close.state, close.statusReason], ["close", 401]);
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("simulator control API over HTTP, and per-route call counts", async () => {
  const s = await sim();
  try {
    const post = (m: string, args: unknown[]) =>
      fetch(`${s.url}/_control/${m}`, { method: "POST", body: JSON.stringify(args) }).then(async (r) => ({
        status: r.status,
        body: await r.json(),
      }));
    assert.deepEqual(await post("seedInstance", ["revalya-acme", { state: "close" }]), {
      status: 200,
      body: { ok: true },
    });
    assert.equal((await post("setState", ["revalya-acme", "open"])).status, 200);
    assert.equal((await post("setState", ["revalya-ghost", "open"])).status, 404);
    assert.equal((await post("fault", [{ kind: "nope" }])).status, 400);
    assert.equal((await post("nope", [])).status, 404);
    const instances = await (await fetch(`${s.url}/_control/instances`)).json();
    assert.deepEqual(instances.map((i: { name: string; state: string }) => [i.name, i.state]), [[
      "revalya-acme",
      "open",
    ]]);
    await call(s.url, "GET", "/instance/fetchInstances", s.apiKey);
    await call(s.url, "GET", "/instance/connectionState/revalya-acme", s.apiKey);
    await call(s.url, "GET", "/instance/connectionState/revalya-acme", s.apiKey);
    const stats = await (await fetch(`${s.url}/_control/stats`)).json();
    assert.deepEqual(stats, { calls: { fetchInstances: 1, connectionState: 2 }, total: 3 });
    assert.equal((await post("setDown", [true])).status, 200, "control stays reachable while down");
    await assert.rejects(fetch(`${s.url}/`));
    await post("setDown", [false]);
    assert.deepEqual(await post("reset", []), { status: 200, body: { ok: true } });
    assert.deepEqual(await (await fetch(`${s.url}/_control/instances`)).json(), []);
  } finally {
    await s.close();
  }
});

Deno.test("simulator holds 5,000 instances and lists them in one fetchInstances call", async () => {
  const s = await sim();
  try {
    s.control.seedInstances(Array.from({ length: 5000 }, (_, i) => [`revalya-t${i}`, { state: "open" as const }]));
    const [all, ms] = await timed(() => call(s.url, "GET", "/instance/fetchInstances", s.apiKey));
    assert.equal(all.body.length, 5000);
    // No pagination, one `_count` per row: the default listing cost is 10 ms + 0.25 ms a row.
    assert.ok(ms >= 1250, `5,000 rows answered in ${ms} ms`);
    assert.ok(all.body.every((r: { connectionStatus: string }) => r.connectionStatus === "open"));
    assert.deepEqual(s.control.stats().calls, { fetchInstances: 1 });
  } finally {
    await s.close();
  }
});
