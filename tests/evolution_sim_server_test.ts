// The simulator's server-wide realism: `date_time` in local wall time, `GET /` and its outside lookup, 2.4.0's
// licence gate, full-size rows and listing time, 1.8's event list and missing-instance answer, and each version's
// webhook retry policy.
import assert from "node:assert/strict";
import { api, call, control, ok, receiver, sim, sleep, timed, until } from "./_evolution_sim.ts";
import { EVENT_CONFIG_NAMES_V18 } from "../shared/evolution/events.ts";

Deno.test("date_time is the server's local wall time with a Z: Sao Paulo (UTC−3) unless changed", async () => {
  const r = receiver();
  const s = await sim("2.3.7");
  try {
    s.control.seedInstance("revalya-tz", { state: "open", webhookUrl: r.url });
    const offsetOf = async () => {
      r.got.length = 0;
      s.control.setState("revalya-tz", "open");
      await s.control.drain();
      return Math.round(
        (Date.parse(String(r.got[0].body.date_time)) - r.got[0].at - performance.timeOrigin) / 60_000,
      ) || 0;
    };
    assert.equal(await offsetOf(), -180);
    await ok(s, "setUtcOffset", 0);
    assert.equal(await offsetOf(), 0, "true UTC only when asked");
    await ok(s, "setUtcOffset", 60);
    assert.equal(await offsetOf(), 60);
    assert.equal((await control(s, "setUtcOffset", "x")).status, 400);
    s.control.reset();
    s.control.seedInstance("revalya-tz", { state: "open", webhookUrl: r.url });
    assert.equal(await offsetOf(), -180, "reset restores the default");
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("GET /: 2.3.7 waits for the outside version lookup on every call; slow, refused, dropped", async () => {
  const s = await sim("2.3.7");
  try {
    for (let n = 0; n < 2; n++) {
      const [info, ms] = await timed(() => call(s.url, "GET", "/", null));
      assert.equal(info.body.version, "2.3.7");
      assert.ok(ms >= 145, `GET / #${n + 1} took ${ms} ms (a realistic outside round trip: 150 ms)`);
    }
    await ok(s, "setOutbound", "slow", 400);
    assert.ok((await timed(() => call(s.url, "GET", "/", null)))[1] >= 395);
    await ok(s, "setOutbound", "refused");
    const [fast, fastMs] = await timed(() => call(s.url, "GET", "/", null));
    assert.ok(fastMs < 100, "DNS or connect failing fast: the bundled version at once");
    assert.notEqual(fast.body.whatsappWebVersion, "2.3000.1025190524");
    await ok(s, "setOutbound", "dropped");
    await assert.rejects(
      fetch(`${s.url}/`, { signal: AbortSignal.timeout(300) }),
      /abort|timed out/i,
      "dropped packets: each lookup waits for the TCP connect timeout",
    );
    // A cheap authenticated route does not go outside.
    assert.ok((await timed(() => call(s.url, "GET", "/instance/fetchInstances", s.apiKey)))[1] < 100);
  } finally {
    await s.close();
  }
});

Deno.test("GET /: 1.8 makes no outside call; 2.4.0 caches the version", async () => {
  const s18 = await sim("1.8.6");
  const s24 = await sim("2.4.0");
  try {
    const [v1, ms1] = await timed(() => call(s18.url, "GET", "/", null));
    assert.deepEqual([v1.body.version, "whatsappWebVersion" in v1.body], ["1.8.6", false]);
    assert.ok(ms1 < 100);
    const [first, ms2] = await timed(() => call(s24.url, "GET", "/", null));
    assert.equal(first.body.version, "2.4.0");
    assert.ok(ms2 >= 145);
    assert.ok((await timed(() => call(s24.url, "GET", "/", null)))[1] < 100, "cached");
  } finally {
    await s18.close();
    await s24.close();
  }
});

Deno.test("2.4.0 before activation: every route but / and a few answers 503 LICENSE_REQUIRED", async () => {
  const r = receiver();
  const s = await sim("2.4.0");
  const k = s.apiKey;
  try {
    s.control.seedInstance("revalya-lic", { webhookUrl: r.url });
    assert.equal((await call(s.url, "GET", "/", null)).body.version, "2.4.0");
    for (
      const [method, path] of [["GET", "/instance/fetchInstances"], ["GET", "/instance/connectionState/revalya-lic"], [
        "POST",
        "/instance/create",
      ], ["GET", "/nowhere"]]
    ) {
      const res = await call(s.url, method, path, k, method === "POST" ? {} : undefined);
      assert.equal(res.status, 503, path);
      assert.deepEqual(Object.keys(res.body).sort(), [
        "code",
        "docs_url",
        "error",
        "instance_id",
        "message",
        "register_url",
      ]);
      assert.deepEqual([res.body.error, res.body.code], ["service not activated", "LICENSE_REQUIRED"]);
      assert.equal(res.body.register_url, `${s.url}/manager/login`);
    }
    assert.equal((await call(s.url, "GET", "/health", null)).status, 200);
    assert.equal((await call(s.url, "GET", "/license/status", null)).body.status, "inactive");
    await ok(s, "activateLicense");
    assert.equal((await call(s.url, "GET", "/instance/fetchInstances", k)).status, 200);
    // 2.4.0's own answers: logout of a closed instance is a success; MESSAGING_HISTORY_SET is a known event;
    // deliveries carry the X-Instance-* headers.
    assert.deepEqual((await api(s, "revalya-lic").logout()).body, {
      status: "SUCCESS",
      error: false,
      response: { message: "Instance was already disconnected" },
    });
    const set = await call(s.url, "POST", "/webhook/set/revalya-lic", k, {
      webhook: { enabled: true, url: r.url, events: ["CONNECTION_UPDATE", "MESSAGING_HISTORY_SET"] },
    });
    assert.equal(set.status, 201);
    s.control.setState("revalya-lic", "open");
    await s.control.drain();
    const h = r.got[0].headers;
    assert.deepEqual([h.get("x-instance-name"), h.get("x-event-type")], ["revalya-lic", "connection.update"]);
    assert.equal(h.get("user-agent"), "EvolutionAPI-Webhook/2.3.7");
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("fetchInstances rows are full-size (1–2 KB once connected) and the listing time grows with the rows", async () => {
  const s = await sim("2.3.7", { listLatency: { baseMs: 20, perRowMs: 0.5 } });
  try {
    s.control.seedInstances(Array.from({ length: 1000 }, (_, n) => [`revalya-s${n}`, { state: "open" as const }]));
    const [all, ms] = await timed(() => call(s.url, "GET", "/instance/fetchInstances", s.apiKey));
    assert.ok(ms >= 520, `1,000 rows in ${ms} ms`);
    const sizes = all.body.map((row: unknown) => JSON.stringify(row).length);
    assert.ok(
      sizes.every((n: number) => n >= 1000 && n <= 2048),
      `row sizes ${Math.min(...sizes)}…${Math.max(...sizes)}`,
    );
    const row = all.body[0];
    assert.match(row.profilePicUrl, /^https:\/\/pps\.whatsapp\.net\//);
    assert.equal(typeof row.disconnectionObject, "string");
    assert.ok(row._count.Message > 0 && row.Setting.instanceId === row.id);
    const [, oneMs] = await timed(() =>
      call(s.url, "GET", "/instance/fetchInstances?instanceName=revalya-s1", s.apiKey)
    );
    assert.ok(oneMs < 200, "one row costs one row");
  } finally {
    await s.close();
  }
});

Deno.test("1.8: create and webhook/set accept only 1.8's event list; a missing instance is a bare 500", async () => {
  const s = await sim("1.8.6");
  const k = s.apiKey;
  try {
    s.control.seedInstance("revalya-v1");
    const bad = await call(s.url, "POST", "/webhook/set/revalya-v1", k, {
      url: "http://127.0.0.1:9/h",
      events: ["QRCODE_UPDATED", "REMOVE_INSTANCE"],
    });
    assert.deepEqual(bad.body.response.message, [
      `events[1] is not one of enum values: ${EVENT_CONFIG_NAMES_V18.join(",")}`,
    ]);
    const all = await call(s.url, "POST", "/webhook/set/revalya-v1", k, { url: "http://127.0.0.1:9/h", events: [] });
    assert.equal(all.status, 201);
    assert.deepEqual(
      (await call(s.url, "GET", "/webhook/find/revalya-v1", k)).body.events,
      [...EVENT_CONFIG_NAMES_V18],
    );
    for (const q of ["instanceName=revalya-ghost", "instanceId=nope"]) {
      const missing = await call(s.url, "GET", `/instance/fetchInstances?${q}`, k);
      assert.deepEqual([missing.status, missing.body.error, Array.isArray(missing.body.message)], [500, true, true]);
    }
    assert.deepEqual((await call(s.url, "GET", "/instance/fetchInstances?instanceName=revalya-ghost", k)).body, {
      error: true,
      message: ['Instance "revalya-ghost" not found'],
    });
  } finally {
    await s.close();
  }
});

Deno.test("webhook retries: 2.3.7 backs off 5 s doubling to 300 s (±20 %), 10 attempts, gives up on 404", async () => {
  const r = receiver(() => 503);
  const s = await sim("2.3.7", { timeScale: 0.001 });
  try {
    s.control.seedInstance("revalya-rt", { state: "open", webhookUrl: r.url, webhookEvents: ["CONNECTION_UPDATE"] });
    s.control.setState("revalya-rt", "open");
    await s.control.drain();
    assert.equal(r.got.length, 10);
    const gaps = r.got.slice(1).map((g, n) => g.at - r.got[n].at);
    const base = [5, 10, 20, 40, 80, 160, 300, 300, 300];
    gaps.forEach((gap, n) => {
      assert.ok(gap >= base[n] * 0.8 - 2 && gap <= base[n] * 1.2 + 30, `retry ${n + 1}: ${gap} ms, base ${base[n]}`);
    });
    const r404 = receiver([404]);
    s.control.seedInstance("revalya-404", { state: "open", webhookUrl: r404.url });
    s.control.setState("revalya-404", "open");
    await s.control.drain();
    assert.equal(r404.got.length, 1);
    await r404.close();
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("webhook retries: 1.8 retries every failure (404 included) 30 s apart, 10 attempts", async () => {
  const r = receiver(() => 404);
  const s = await sim("1.8.6", { timeScale: 0.001 });
  try {
    s.control.seedInstance("revalya-rt", { state: "open", webhookUrl: r.url });
    s.control.setState("revalya-rt", "open");
    await s.control.drain();
    assert.equal(r.got.length, 10);
    const gaps = r.got.slice(1).map((g, n) => g.at - r.got[n].at);
    assert.ok(gaps.every((g) => g >= 28 && g < 80), `gaps ${gaps.map(Math.round)}`);
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("webhookRetryDelaysMs still sets explicit delays (no jitter)", async () => {
  const r = receiver([500, 500]);
  const s = await sim("2.3.7", { webhookRetryDelaysMs: [50, 100] });
  try {
    s.control.seedInstance("revalya-x", { state: "open", webhookUrl: r.url });
    s.control.setState("revalya-x", "open");
    await until(() => r.got.length === 3, 2000, "three attempts");
    const gaps = r.got.slice(1).map((g, n) => g.at - r.got[n].at);
    assert.ok(gaps[0] >= 48 && gaps[1] >= 98, `gaps ${gaps}`);
    await sleep(10);
    assert.deepEqual(s.control.deliveries().map((d) => d.status), [500, 500, 200]);
  } finally {
    await s.close();
    await r.close();
  }
});
