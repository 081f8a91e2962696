// The simulator's dead sockets (contract §5.4) and the liveness probe (§3.13): reads say open, everything that
// needs the socket fails with "Connection Closed" in its route's shape, no webhook announces it; restart heals it
// unless the socket cannot be ended again (then only a process restart does).
import assert from "node:assert/strict";
import { api, call, ok, receiver, sim, sleep, until, VERSIONS } from "./_evolution_sim.ts";

const CLOSED_PROBE = {
  status: 500,
  body: {
    status: 500,
    error: "Internal Server Error",
    response: { message: ["Error updating profile name", "Error: Connection Closed"] },
  },
};

for (const version of VERSIONS) {
  Deno.test(`${version}: the probe answers 200 on a live socket, 500 Connection Closed on one that is not open`, async () => {
    const s = await sim(version, { licenseActivated: true });
    try {
      s.control.seedInstance("revalya-live", { state: "open" });
      s.control.seedInstance("revalya-closed");
      const live = await api(s, "revalya-live").probe();
      assert.equal(live.status, 200);
      assert.equal(live.body.isBusiness, false);
      assert.match(live.body.jid, /^55\d{11}@s\.whatsapp\.net$/);
      assert.deepEqual(await api(s, "revalya-closed").probe(), CLOSED_PROBE);
      assert.equal((await api(s, "revalya-ghost").probe()).status, 404);
      assert.equal((await call(s.url, "POST", "/chat/fetchBusinessProfile/revalya-live", "wrong", {})).status, 401);
    } finally {
      await s.close();
    }
  });
}

Deno.test("2.3.7 dead socket: reads say open, writes fail with Connection Closed, no webhook", async () => {
  const r = receiver();
  const s = await sim("2.3.7");
  const name = "revalya-zombie";
  const i = api(s, name);
  try {
    s.control.seedInstance(name, { state: "open", webhookUrl: r.url });
    assert.equal((await i.send("5511999990001")).status, 201, "a number that is now in the on-WhatsApp cache");
    await s.control.drain();
    r.got.length = 0;
    await ok(s, "killSocket", name);
    assert.equal((await i.state()).body.instance.state, "open");
    assert.equal((await i.stored())?.connectionStatus, "open");
    assert.deepEqual((await i.connect()).body, { instance: { instanceName: name, state: "open" } });
    assert.deepEqual(await i.probe(), CLOSED_PROBE);
    const uncached = await i.send("5511999990002");
    assert.deepEqual([uncached.status, uncached.body.response.message], [500, "Connection Closed"]);
    const cached = await i.send("5511999990001");
    assert.deepEqual([cached.status, cached.body.response.message], [400, ["Error: Connection Closed"]]);
    const numbers = await call(s.url, "POST", `/chat/whatsappNumbers/${name}`, s.apiKey, {
      numbers: ["5511999990003"],
    });
    assert.equal(numbers.status, 400);
    assert.equal(numbers.body.output.payload.message, "Connection Closed");
    const logout = await i.logout();
    assert.deepEqual([logout.status, logout.body.response.message], [500, ["Error: Connection Closed"]]);
    const del = await i.remove();
    assert.deepEqual([del.status, del.body.response.message], [400, ["[object Object]"]]);
    assert.equal((await i.state()).body.instance.state, "open", "nothing logged out, nothing deleted");
    await s.control.drain();
    assert.deepEqual(r.got, [], "no webhook announces it");
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("restart heals a dead socket (connecting, then open); a socket restart cannot end stays dead", async () => {
  const r = receiver();
  const s = await sim("2.3.7");
  try {
    s.control.seedInstance("revalya-heal", { state: "open", webhookUrl: r.url });
    s.control.killSocket("revalya-heal");
    const i = api(s, "revalya-heal");
    assert.deepEqual((await i.restart()).body, { instance: { instanceName: "revalya-heal", state: "open" } });
    await until(async () => (await i.probe()).status === 200, 1000, "the new socket");
    await s.control.drain();
    assert.deepEqual(r.events(), [["connection.update", "connecting"], ["connection.update", "open"]]);

    s.control.seedInstance("revalya-stuck", { state: "open", webhookUrl: r.url, deadSocket: "unhealable" });
    r.got.length = 0;
    const j = api(s, "revalya-stuck");
    assert.deepEqual((await j.restart()).body, { instance: { instanceName: "revalya-stuck", state: "open" } });
    await sleep(100);
    assert.deepEqual(await j.probe(), CLOSED_PROBE, "still dead");
    assert.deepEqual(r.got, []);
    await s.control.restartServer({ downMs: 10 });
    await until(async () => (await j.probe()).status === 200, 1000, "the process restart to heal it");
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("dead socket on 2.4.0 and 1.8: delete goes on; 1.8's logout answers SUCCESS and nothing happens", async () => {
  const s24 = await sim("2.4.0", { licenseActivated: true, cleanupDelayMs: 20 });
  const s18 = await sim("1.8.6", { cleanupDelayMs: 20 });
  try {
    s24.control.seedInstance("revalya-z", { state: "open", deadSocket: true });
    const logout24 = await api(s24, "revalya-z").logout();
    assert.deepEqual([logout24.status, logout24.body.response.message], [500, ["Error: Connection Closed"]]);
    assert.equal((await api(s24, "revalya-z").remove()).status, 200, "2.4.0 tolerates the failing logout");
    await until(async () => (await api(s24, "revalya-z").state()).status === 404, 1000, "the delete");

    s18.control.seedInstance("revalya-z", { state: "open", deadSocket: true });
    const i = api(s18, "revalya-z");
    assert.deepEqual((await i.logout()).body, {
      status: "SUCCESS",
      error: false,
      response: { message: "Instance logged out" },
    });
    assert.equal((await i.state()).body.instance.state, "open", "fire-and-forget: still open");
    assert.equal((await i.remove()).status, 200);
    await until(async () => (await i.state()).status === 404, 1000, "the delete");
  } finally {
    await s24.close();
    await s18.close();
  }
});
