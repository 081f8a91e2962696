// The simulator's scenario library, driven over the HTTP control API (`POST /_control/<scenario>`) in each version:
// each puts one instance into a situation reported against the real server, and the test checks what an operator
// would see.
import assert from "node:assert/strict";
import { api, control, ok, receiver, sim, sleep, until, VERSIONS } from "./_evolution_sim.ts";

for (const version of VERSIONS) {
  const v1 = version === "1.8.6";
  const open = (extra = {}) => sim(version, { licenseActivated: true, ...extra });

  Deno.test(`${version} frozen (#1153, #2403): listed open, no webhooks, commands do nothing; a process restart heals`, async () => {
    const r = receiver();
    const s = await open();
    const name = "revalya-frozen";
    const i = api(s, name, version);
    try {
      s.control.seedInstance(name, { state: "open", webhookUrl: r.url });
      await ok(s, "frozen", name);
      assert.equal((await i.stored())?.connectionStatus, "open");
      assert.equal((await i.state()).body.instance.state, "open");
      assert.equal((await i.probe()).status, 500);
      assert.equal((await i.send("5511999990001")).status, 500);
      // 2.x awaits the Baileys logout (500); 1.8 does not (SUCCESS, and nothing happens).
      assert.equal((await i.logout()).status, v1 ? 200 : 500);
      if (version === "2.3.7") assert.equal((await i.remove()).status, 400);
      assert.deepEqual((await i.restart()).body, { instance: { instanceName: name, state: "open" } });
      await sleep(100);
      assert.equal((await i.probe()).status, 500, "restart did not help");
      assert.equal((await i.state()).body.instance.state, "open");
      await s.control.drain();
      assert.deepEqual(r.got, [], "not one webhook");
      await ok(s, "restartServer", { downMs: 10 });
      await until(async () => (await i.probe()).status === 200, 1000, "the process restart");
      await s.control.drain();
      assert.deepEqual(r.events(), [["connection.update", "connecting"], ["connection.update", "open"]]);
    } finally {
      await s.close();
      await r.close();
    }
  });

  Deno.test(`${version} staleConnected (#1398): the connection dropped, no close was sent; connect heals`, async () => {
    const r = receiver();
    const s = await open();
    const name = "revalya-stale";
    const i = api(s, name, version);
    try {
      s.control.seedInstance(name, { state: "open", webhookUrl: r.url });
      await ok(s, "staleConnected", name);
      await sleep(100);
      // 2.x lists the stored status (still open); 1.8 lists the memory state.
      assert.equal((await i.stored())?.connectionStatus, v1 ? "close" : "open");
      assert.equal((await i.state()).body.instance.state, "close");
      assert.equal((await i.probe()).status, 500);
      assert.deepEqual(
        (await i.restart()).body,
        v1 ? { instance: { instanceName: name, state: "close" } } : { error: true, message: "[object Object]" },
      );
      await s.control.drain();
      assert.deepEqual(r.got, [], "a transient drop sends no close");
      await i.connect();
      await until(async () => (await i.state()).body.instance.state === "open", 1000, "the reconnect");
      await s.control.drain();
      assert.deepEqual(r.events(), [["connection.update", "connecting"], ["connection.update", "open"]]);
      assert.equal((await i.stored())?.connectionStatus, "open");
    } finally {
      await s.close();
      await r.close();
    }
  });

  Deno.test(`${version} stream515Then401 (#2498): a fresh pairing reconnects after 515, then a 401 logs it out`, async () => {
    const r = receiver();
    const s = await open();
    const name = "revalya-515";
    const i = api(s, name, version);
    try {
      s.control.seedInstance(name, { webhookUrl: r.url });
      await ok(s, "stream515Then401", name, { openForMs: 50 });
      await s.control.drain();
      assert.deepEqual(r.events(), [
        ["connection.update", "connecting"],
        ["qrcode.updated", null],
        ["connection.update", "connecting"],
        ["connection.update", "open"],
        ...(v1 ? [] : [["status.instance", null], ["logout.instance", null]]),
        ["connection.update", "close"],
      ]);
      assert.equal((r.got.at(-1)!.body.data as { statusReason: number }).statusReason, 401);
      const row = await i.stored();
      assert.equal(row?.connectionStatus, "close");
      if (!v1) assert.equal(row?.disconnectionReasonCode, 401);
      assert.equal((await control(s, "stream515Then401", name)).status, 200, "it can pair again (a new QR)");
    } finally {
      await s.close();
      await r.close();
    }
  });

  Deno.test(`${version} intermittent401 (#2356): one instance's routes answer 401 for a while, then recover`, async () => {
    const s = await open();
    try {
      s.control.seedInstance("revalya-flaky", { state: "open" });
      s.control.seedInstance("revalya-fine", { state: "open" });
      await ok(s, "intermittent401", "revalya-flaky", { durationMs: 300 });
      assert.deepEqual(await api(s, "revalya-flaky").state(), {
        status: 401,
        body: { status: 401, error: "Unauthorized", response: { message: "Unauthorized" } },
      });
      assert.equal((await api(s, "revalya-flaky").probe()).status, 401);
      assert.equal((await api(s, "revalya-fine").state()).status, 200);
      assert.equal((await api(s, "revalya-ghost").state()).status, 404, "the instance guard still runs first");
      await sleep(350);
      assert.equal((await api(s, "revalya-flaky").state()).status, 200);
    } finally {
      await s.close();
    }
  });

  Deno.test(`${version} connectingLoop (#1502): keeps falling back to connecting, the listing still open`, async () => {
    const r = receiver();
    // Each new socket times out (408) after 100 ms.
    const s = await open({ connectTimeoutMs: 100, reconnectMs: 10 });
    const name = "revalya-cloop";
    const i = api(s, name, version);
    try {
      s.control.seedInstance(name, { state: "open", webhookUrl: r.url });
      await ok(s, "connectingLoop", name);
      if (version === "2.4.0") {
        // 2.4.0-rc2 counts 408 as terminal: the first timeout logs the instance out.
        await until(async () => (await i.stored())?.connectionStatus === "close", 1000, "the 408 logout");
        await s.control.drain();
        assert.deepEqual(r.events().at(-1), ["connection.update", "close"]);
        assert.equal((r.got.at(-1)!.body.data as { statusReason: number }).statusReason, 408);
        return;
      }
      const seen = new Set<string>();
      for (let n = 0; n < 60; n++) {
        seen.add((await i.state()).body.instance.state);
        if (!v1) assert.equal((await i.stored())?.connectionStatus, "open");
        await sleep(5);
      }
      assert.ok(!seen.has("open") && seen.has("connecting"), [...seen].join());
      await s.control.drain();
      const states = r.events().map(([, st]) => st);
      assert.ok(states.length >= 2 && states.every((st) => st === "connecting"), states.join());
      await ok(s, "stopLoop", name);
      await until(async () => (await i.state()).body.instance.state === "open", 1000, "the loop to stop");
      // A loop with a fixed number of cycles ends open on its own.
      await ok(s, "connectingLoop", name, { cycles: 2 });
      await until(async () => (await i.state()).body.instance.state === "open", 2000, "two cycles");
    } finally {
      await s.close();
      await r.close();
    }
  });

  Deno.test(`${version} qrLimit: drives a pairing to QRCODE_LIMIT at once; then memory close and silence`, async () => {
    const r = receiver();
    const s = await open();
    const name = "revalya-qrl";
    const i = api(s, name, version);
    try {
      s.control.seedInstance(name, { webhookUrl: r.url, qrCount: 10 });
      const shown = await ok(s, "qrLimit", name);
      await sleep(100);
      await s.control.drain();
      const qrs = r.got.filter((g) => g.body.event === "qrcode.updated").length;
      if (version === "2.4.0") {
        // The first socket runs out of QR refs (408), terminal on 2.4.0-rc2: the limit is never reached.
        assert.deepEqual([shown, qrs], [{ result: 6 }, 6]);
        assert.deepEqual(r.events().at(-1), ["connection.update", "close"]);
        assert.equal((await i.stored())?.connectionStatus, "close");
        return;
      }
      assert.deepEqual(shown, { result: 20 }, "the count carried on from 10");
      assert.equal(qrs, 21, "20 codes and the limit message");
      // Baileys closes each socket after 6 codes (408) and Evolution reconnects: codes 11–16, 17–22, 23–28,
      // 29–30 and the limit come from four sockets, each announced by a connecting.
      assert.equal(r.events().filter(([, st]) => st === "connecting").length, 4);
      assert.deepEqual(r.got.at(-1)!.body.data, { instance: name, state: "refused", statusReason: 428 });
      // 2.x: the row stays connecting (the last QR wrote it); 1.8 lists memory.
      assert.deepEqual([(await i.state()).body.instance.state, (await i.stored())?.connectionStatus], [
        "close",
        v1 ? "close" : "connecting",
      ]);
      assert.equal((await control(s, "qrLimit", "revalya-ghost")).status, 404);
    } finally {
      await s.close();
      await r.close();
    }
  });
}
