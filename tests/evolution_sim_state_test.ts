// The simulator's state machine (contract §5): the stored status apart from the memory state, transient closes
// (memory only, no `close` webhook, no row write) vs terminal ones per version, reconnect loops, the accumulating
// QR count and its limit, setState's meaning, and a process restart.
import assert from "node:assert/strict";
import { api, call, control, ok, receiver, sim, sleep, until, VERSIONS } from "./_evolution_sim.ts";

const stateOf = async (i: ReturnType<typeof api>) => (await i.state()).body.instance.state;
const storedOf = async (i: ReturnType<typeof api>) => (await i.stored())?.connectionStatus;

Deno.test("2.3.7 fetchInstances answers the stored status, connectionState the memory state", async () => {
  const r = receiver();
  const s = await sim("2.3.7", { reconnectMs: 200, firstQrMs: 50, connectWaitMs: 100 });
  const name = "revalya-split";
  const i = api(s, name);
  try {
    await i.create({ webhook: { url: r.url, events: [] } });
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["close", "close"], "created");
    // connect: memory connecting at once; the row is written connecting by the first QR.
    const pending = i.connect();
    await sleep(10);
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["connecting", "close"], "socket up, no QR yet");
    await pending;
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["connecting", "connecting"], "QR shown");
    s.control.scan(name);
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["open", "open"]);
    // A transient close: memory close, then connecting and open; the row never leaves open.
    await s.control.drain();
    r.got.length = 0;
    const reconnect = s.control.disconnect(name, 428);
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["close", "open"], "transient close");
    await reconnect;
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["open", "open"]);
    await s.control.drain();
    assert.deepEqual(r.events(), [["connection.update", "connecting"], ["connection.update", "open"]]);
    // A terminal close writes the row: close and the disconnection fields.
    await s.control.disconnect(name, 401);
    const row = await i.stored();
    assert.deepEqual([await stateOf(i), row?.connectionStatus, row?.disconnectionReasonCode], ["close", "close", 401]);
    assert.equal(JSON.parse(String(row?.disconnectionObject)).error.output.statusCode, 401);
  } finally {
    await s.close();
    await r.close();
  }
});

for (
  const [version, terminal, transient] of [
    ["2.3.7", [401, 402, 403, 406], [408, 411, 428, 440, 500, 503, 515]],
    ["2.4.0", [401, 402, 403, 406, 408], [428, 440, 515]],
    ["1.8.6", [401], [402, 403, 406, 408, 428, 440, 500, 503, 515]],
  ] as const
) {
  Deno.test(`${version}: terminal closes ${terminal.join("/")} log out; the others reconnect silently`, async () => {
    const r = receiver();
    const s = await sim(version, { licenseActivated: true });
    try {
      for (const reason of [...terminal, ...transient]) {
        const name = `revalya-r${reason}`;
        s.control.seedInstance(name, { state: "open", webhookUrl: r.url });
        r.got.length = 0;
        await s.control.disconnect(name, reason);
        await s.control.drain();
        const events = r.got.map((g) => g.body.event);
        const states = r.events().map(([, st]) => st).filter((st) => st);
        if ((terminal as readonly number[]).includes(reason)) {
          assert.deepEqual(
            events,
            version === "1.8.6"
              ? ["connection.update"] // status.instance is not in 1.8's event list
              : ["status.instance", "logout.instance", "connection.update"],
            `${reason}`,
          );
          assert.deepEqual(r.got.at(-1)!.body.data, {
            ...(r.got.at(-1)!.body.data as object),
            state: "close",
            statusReason: reason,
          });
          assert.equal(await stateOf(api(s, name)), "close");
        } else {
          assert.deepEqual(states, ["connecting", "open"], `${reason} reconnects`);
          assert.ok(!events.includes("status.instance") && !events.includes("logout.instance"));
          assert.equal(await stateOf(api(s, name)), "open");
          if (version !== "1.8.6") assert.equal(await storedOf(api(s, name)), "open");
        }
      }
    } finally {
      await s.close();
      await r.close();
    }
  });
}

Deno.test("1.8 has one state: the listing follows memory through a transient close", async () => {
  const s = await sim("1.8.6", { reconnectMs: 200 });
  const name = "revalya-one";
  const i = api(s, name, "1.8.6");
  try {
    s.control.seedInstance(name, { state: "open" });
    const reconnect = s.control.disconnect(name, 428);
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["close", "close"]);
    await reconnect;
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["open", "open"]);
  } finally {
    await s.close();
  }
});

Deno.test("reconnectLoop: memory cycles, the row stays open, only connecting/open webhooks", async () => {
  const r = receiver();
  const s = await sim("2.3.7", { reconnectMs: 20, openMs: 20 });
  const name = "revalya-loop";
  const i = api(s, name);
  try {
    s.control.seedInstance(name, { state: "open", webhookUrl: r.url });
    await ok(s, "reconnectLoop", name, { cycles: 3, openForMs: 30 });
    const seen = new Set<string>();
    const end = Date.now() + 2000;
    while (Date.now() < end && (seen.size < 3 || (await stateOf(i)) !== "open" || r.got.length < 6)) {
      seen.add(await stateOf(i));
      assert.equal(await storedOf(i), "open", "the row never moves");
      await sleep(3);
    }
    await sleep(100);
    await s.control.drain();
    assert.deepEqual([...seen].sort(), ["close", "connecting", "open"]);
    assert.deepEqual(
      r.events(),
      Array.from({ length: 3 }, () => [["connection.update", "connecting"], [
        "connection.update",
        "open",
      ]]).flat(),
    );
    // A loop that never opens: each socket times out (408) and reconnects; stopLoop lets it open.
    r.got.length = 0;
    s.control.reconnectLoop(name, { opens: false });
    await sleep(400);
    assert.notEqual(await stateOf(i), "open");
    assert.equal(await storedOf(i), "open");
    s.control.stopLoop(name);
    await until(async () => (await stateOf(i)) === "open", 1000, "the loop to end open");
    await s.control.drain();
    const states = r.events().map(([, st]) => st);
    assert.ok(states.filter((st) => st === "connecting").length >= 2, JSON.stringify(states));
    assert.deepEqual([...new Set(states)].sort(), ["connecting", "open"]);
  } finally {
    await s.close();
    await r.close();
  }
});

for (const version of VERSIONS) {
  Deno.test(`${version}: the QR count grows across connects; only the limit resets it`, async () => {
    const r = receiver();
    const s = await sim(version, {
      qrLimit: 4,
      qrIntervalMs: 40,
      firstQrMs: 5,
      connectWaitMs: 20,
      licenseActivated: true,
    });
    const name = "revalya-count";
    const i = api(s, name, version);
    try {
      s.control.seedInstance(name, { webhookUrl: r.url });
      assert.equal((await i.connect()).body.count, 1);
      await until(() => s.control.instances()[0].qrCount === 2, 1000, "a second QR");
      // A logout and a new connect do not reset it.
      assert.equal((await i.logout()).status, 200);
      assert.equal((await i.connect()).body.count, 3);
      await until(() => s.control.instances()[0].state === "close", 2000, "the QR limit");
      await sleep(100);
      await s.control.drain();
      const tail = r.got.slice(r.got.findIndex((g) => (g.body.data as { message?: string })?.message));
      assert.deepEqual(tail.map((g) => g.body.data), [
        { message: "QR code limit reached, please login again", statusCode: 500 },
        { instance: name, state: "refused", statusReason: 428 },
      ], "nothing follows the refused");
      // 2.x: the row stays what the last QR wrote; 1.8 has one state.
      assert.deepEqual([await stateOf(i), await storedOf(i)], ["close", version === "1.8.6" ? "close" : "connecting"]);
      assert.equal(s.control.instances()[0].qrCount, 0);
      assert.equal((await i.connect()).body.count, 1, "the limit reset it");
    } finally {
      await s.close();
      await r.close();
    }
  });
}

Deno.test("setState: open and stuck connecting; close is terminal (a transient reason is refused)", async () => {
  const r = receiver();
  const s = await sim("2.3.7");
  const name = "revalya-set";
  const i = api(s, name);
  try {
    s.control.seedInstance(name, { webhookUrl: r.url });
    await ok(s, "setState", name, "connecting");
    await sleep(100);
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["connecting", "connecting"]);
    assert.equal(s.control.instances()[0].qrCount, 0, "stuck: no QR");
    await ok(s, "setState", name, "open");
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["open", "open"]);
    const refused = await control(s, "setState", name, "close", { statusReason: 428 });
    assert.equal(refused.status, 400);
    assert.match(refused.body.error, /not a terminal close/);
    await ok(s, "setState", name, "close", { statusReason: 403 });
    await s.control.drain();
    assert.deepEqual(r.got.slice(-3).map((g) => g.body.event), [
      "status.instance",
      "logout.instance",
      "connection.update",
    ]);
    assert.equal((r.got.at(-1)!.body.data as { statusReason: number }).statusReason, 403);
    assert.deepEqual([await stateOf(i), (await i.stored())?.disconnectionReasonCode], ["close", 403]);
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("restartServer: down, then every instance reloaded from its row (2.3.7 reconnects open/connecting)", async () => {
  const r = receiver();
  const s = await sim("2.3.7");
  try {
    s.control.seedInstance("revalya-open", { state: "open", webhookUrl: r.url });
    s.control.seedInstance("revalya-closed", { webhookUrl: r.url, qrCount: 7 });
    s.control.seedInstance("revalya-pairing", { state: "connecting", qrCount: 12, webhookUrl: r.url });
    s.control.killSocket("revalya-open", { healable: false });
    const restarting = s.control.restartServer({ downMs: 100 });
    await assert.rejects(fetch(`${s.url}/`), "down while it restarts");
    await restarting;
    await until(async () => (await stateOf(api(s, "revalya-open"))) === "open", 1000, "the reconnect");
    assert.equal((await api(s, "revalya-open").probe()).status, 200, "a fresh socket");
    assert.equal(await stateOf(api(s, "revalya-closed")), "close", "2.3.7 leaves close ones alone");
    const counts = Object.fromEntries(s.control.instances().map((v) => [v.name, v.qrCount]));
    assert.equal(counts["revalya-closed"], 0, "a new memory object starts at 0");
    assert.ok(counts["revalya-pairing"] <= 1, "pairing again from 0");
  } finally {
    await s.close();
    await r.close();
  }
});

Deno.test("2.3.7 pairing code: connect?number= on a closed instance answers one with each QR (and in qrcode.updated); a connecting instance ignores the number; only the current code pairs", async () => {
  const r = receiver();
  const s = await sim("2.3.7", { firstQrMs: 50, connectWaitMs: 100 });
  const name = "revalya-pairing";
  const i = api(s, name);
  try {
    await i.create({ webhook: { url: r.url, events: [] } });
    const plain = (await i.connect()).body;
    assert.equal(plain.pairingCode, null, "no number, no pairing code");
    const ignored = (await call(s.url, "GET", `/instance/connect/${name}?number=5511987654321`, s.apiKey)).body;
    assert.equal(ignored.pairingCode, null, "a number sent to a connecting instance is ignored");
    assert.throws(() => s.control.enterPairingCode(name, "AAAAAAAA"), /shows no pairing code/);
    await i.logout();
    const first = (await call(s.url, "GET", `/instance/connect/${name}?number=5511987654321`, s.apiKey)).body;
    assert.match(String(first.pairingCode), /^[1-9A-HJ-NP-TV-Z]{8}$/);
    assert.equal(typeof first.code, "string");
    await s.control.drain();
    const hooks = r.got.filter((g) => g.body.event === "qrcode.updated")
      .map((g) => (g.body.data as { qrcode: { pairingCode: string | null } }).qrcode.pairingCode);
    assert.equal(hooks.at(-1), first.pairingCode, "the event carries the same code");
    assert.throws(() => s.control.enterPairingCode(name, "ZZZZZZZZ"), /Wrong pairing code/);
    s.control.enterPairingCode(name, String(first.pairingCode).toLowerCase());
    assert.deepEqual([await stateOf(i), await storedOf(i)], ["open", "open"]);
    assert.throws(() => s.control.enterPairingCode(name, String(first.pairingCode)), /already has a session/);
  } finally {
    await s.close();
    await r.close();
  }
});
