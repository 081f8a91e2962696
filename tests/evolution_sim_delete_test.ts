// The simulator's delete (contract §3.8): the name stays taken until the `remove.instance` delivery (retries
// included) and the clean-up are over; meanwhile connectionState/connect/restart/fetchInstances answer from memory,
// then from the row. 1.8 drops the memory object at once and holds the name only for the clean-up.
import assert from "node:assert/strict";
import { api, ok, receiver, sim, sleep, until } from "./_evolution_sim.ts";

const LIFECYCLE = ["CONNECTION_UPDATE", "STATUS_INSTANCE", "LOGOUT_INSTANCE", "REMOVE_INSTANCE", "INSTANCE_DELETE"];

for (const version of ["2.3.7", "2.4.0"] as const) {
  Deno.test(`${version} delete: the name is taken until remove.instance is delivered (retries included), then cleaned`, async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let removeAttempts = 0;
    // The receiver holds the first remove.instance attempt, then fails it and the next one (503): 3 attempts.
    const r = receiver(async (got) => {
      if (got.body.event !== "remove.instance") return 200;
      removeAttempts++;
      if (removeAttempts === 1) await held;
      return removeAttempts <= 2 ? 503 : 200;
    });
    const s = await sim(version, { cleanupDelayMs: 300, licenseActivated: true });
    const name = "revalya-del";
    const i = api(s, name);
    try {
      assert.equal((await i.create({ webhook: { url: r.url, events: LIFECYCLE } })).status, 201);
      s.control.scan(name);
      assert.deepEqual((await i.remove()).body, {
        status: "SUCCESS",
        error: false,
        response: { message: "Instance deleted" },
      });

      // 1. The delivery is pending: the memory object is there (logged out: close) and so is the row.
      const taken = await i.create();
      assert.deepEqual([taken.status, taken.body.response.message], [403, [`This name "${name}" is already in use.`]]);
      assert.deepEqual((await i.state()).body, { instance: { instanceName: name, state: "close" } });
      assert.equal((await i.one()).body[0].connectionStatus, "close");
      assert.equal(s.control.instances()[0].phase, "removing");

      // 2. Delivered (after two retries): memory dropped, the row stays for the clean-up.
      release();
      await until(() => s.control.instances()[0]?.phase === "cleanup", 3000, "the end of the remove.instance delivery");
      assert.equal(removeAttempts, 3);
      assert.deepEqual((await i.state()).body, { instance: { instanceName: name } }, "no state key");
      assert.deepEqual((await i.connect()).body, { error: true, message: "[object Object]" });
      assert.deepEqual((await i.restart()).body, { error: true, message: "[object Object]" });
      const one = await i.one();
      assert.deepEqual([one.status, one.body.response.message], [404, [`Instance "${name}" not found`]]);
      assert.equal((await i.stored())?.connectionStatus, "close", "the unfiltered listing still has the row");
      assert.equal((await i.create()).status, 403);

      // 3. Cleaned: gone everywhere, and the name is free.
      await until(() => s.control.instances().length === 0, 2000, "the clean-up");
      assert.equal((await i.state()).status, 404);
      assert.equal((await i.create()).status, 201);
      const events = r.got.map((g) => g.body.event);
      assert.deepEqual(events.slice(events.indexOf("status.instance")), [
        "status.instance",
        "logout.instance",
        "connection.update",
        "instance.delete",
        "remove.instance",
        "remove.instance",
        "remove.instance",
      ]);
    } finally {
      await s.close();
      await r.close();
    }
  });
}

Deno.test("2.3.7 delete with a receiver that never answers: the name is held for the whole retry schedule", async () => {
  let stop!: () => void;
  const never = new Promise<number>((res) => (stop = () => res(200)));
  const r = receiver((got) => (got.body.event === "remove.instance" ? never : 200));
  // 1000× faster: attempts time out after 30 ms, retries wait 5 ms … 300 ms (about 1.5 s in all).
  const s = await sim("2.3.7", { timeScale: 0.001 });
  const name = "revalya-hang";
  const i = api(s, name);
  try {
    s.control.seedInstance(name, { webhookUrl: r.url, webhookEvents: ["REMOVE_INSTANCE"] });
    const t0 = performance.now();
    assert.equal((await i.remove()).status, 200);
    await sleep(600);
    assert.equal((await i.create()).status, 403, "still taken while the retries run");
    await until(async () => (await i.create()).status === 201, 5000, "the name to be free");
    const took = performance.now() - t0;
    const attempts = s.control.deliveries().filter((d) => d.event === "remove.instance");
    assert.deepEqual(attempts.map((d) => [d.attempt, d.status]), Array.from({ length: 10 }, (_, n) => [n + 1, null]));
    assert.ok(took > 1000, `held for ${took} ms`);
  } finally {
    stop();
    await s.close();
    await r.close();
  }
});

Deno.test("delete without REMOVE_INSTANCE: the name is held for the clean-up delay (setCleanupDelay)", async () => {
  const s = await sim("2.3.7");
  const name = "revalya-quick";
  const i = api(s, name);
  try {
    await ok(s, "setCleanupDelay", 400);
    s.control.seedInstance(name, { state: "open" });
    assert.equal((await i.remove()).status, 200);
    assert.equal((await i.create()).status, 403);
    await sleep(150);
    assert.deepEqual((await i.state()).body, { instance: { instanceName: name } });
    assert.equal((await i.create()).status, 403, "the row is still being cleaned");
    await sleep(400);
    assert.equal((await i.create()).status, 201);
  } finally {
    await s.close();
  }
});

Deno.test("1.8 delete: the memory object goes at once, the name is held only for the short clean-up", async () => {
  const s = await sim("1.8.6", { cleanupDelayMs: 200 });
  const name = "revalya-v1del";
  const i = api(s, name);
  try {
    s.control.seedInstance(name, { state: "open" });
    assert.equal((await i.remove()).status, 200);
    assert.deepEqual((await i.state()).body, { instance: { instanceName: name } });
    const one = await i.one();
    assert.deepEqual([one.status, one.body], [500, { error: true, message: [`Instance "${name}" not found`] }]);
    assert.equal((await i.create()).status, 403);
    await sleep(300);
    assert.equal((await i.create()).status, 201);
  } finally {
    await s.close();
  }
});
