// Tenant-facing notices and the pairing code (issue 19, item 3), on the real test database with the simulator and
// the local application-webhook receiver: a tenant whose number needs its owner gets one `tenant_action_required`
// through the signed application webhook, naming that tenant only, and one `tenant_action_done` once the number is
// paired again (here with a pairing code the ops action asked for, typed on the simulated phone).
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { startReceivers } from "../dev/receivers.ts";
import { createNotifier } from "../shared/alerts/notify.ts";
import { runHealthCheck } from "../shared/jobs/health_check.ts";
import { createOpsApp } from "../shared/ops/app.ts";
import { maskNumber, PairingNumber } from "../shared/ops/pairing.ts";
import { healthFixture } from "./health_fixture.ts";
import { opsCall, type OpsFixture } from "./ops_fixture.ts";
import { testConfig, testSql, waitFor } from "./_helpers.ts";
import { APP_WEBHOOK_TEST_SECRET } from "./reliability/_matrix.ts";

const NUMBER = "5511987654321";

type Notice = { id: string; type: string; data: Record<string, unknown>; raw: string };

/** A health fixture whose runs tell the application webhook of a local receiver (and no other channel). */
async function noticeFixture() {
  const f = await healthFixture();
  const r = await startReceivers({ appWebhookSecret: APP_WEBHOOK_TEST_SECRET });
  const env = {
    APP_WEBHOOK_URLS: r.appWebhookUrl,
    APP_WEBHOOK_SECRET: APP_WEBHOOK_TEST_SECRET,
    ALERT_LOG: "false",
    EVOLUTION_API_URL: f.sim.url,
    EVOLUTION_API_KEY: f.sim.apiKey,
  };
  const config = testConfig(env);
  const deps = { ...f.deps, config, notify: createNotifier(config, { sql: testSql() }) };
  const app = createOpsApp(deps);
  const ops = (action: string, body: unknown) => opsCall(app, { deps } as unknown as OpsFixture, action, body);
  const run = async (...slugs: string[]) => {
    const out = await runHealthCheck(deps, { runId: crypto.randomUUID(), input: { tenants: slugs } });
    return out.report as Record<string, unknown>;
  };
  /** The notices received, each verified with standardwebhooks' own verifier (it throws on a bad signature). */
  const notices = (): Notice[] =>
    r.control.received("webhook").map((x) => {
      const body = new Webhook(APP_WEBHOOK_TEST_SECRET).verify(x.raw!, x.headers) as Omit<Notice, "id" | "raw">;
      return { id: x.headers["webhook-id"], type: body.type, data: body.data, raw: x.raw! };
    }).filter((n) => n.type.startsWith("tenant_action_"));
  const of = (slug: string) =>
    notices().filter((n) => (n.data.tenant as { slug: string } | undefined)?.slug === slug || n.raw.includes(slug));
  return { f, r, deps, ops, run, notices, of };
}

Deno.test("a logged-out tenant gets one tenant_action_required naming only itself, and one tenant_action_done after the pairing", async () => {
  const x = await noticeFixture();
  try {
    const a = await x.f.tenant("tn-out");
    const banned = await x.f.tenant("tn-ban");
    const fine = await x.f.tenant("tn-ok");
    const all = [a.slug, banned.slug, fine.slug];
    await x.run(...all);
    x.f.sim.control.setState(a.instance, "close"); // removed from the phone's linked devices: 401
    x.f.sim.control.setState(banned.instance, "close", { statusReason: 403 }); // banned by WhatsApp
    for (let i = 0; i < 3; i++) await x.run(...all);
    await waitFor("both notices", () => Promise.resolve(x.notices().length >= 2 || null), 5000);

    const [required, ...more] = x.of(a.slug);
    assert.equal(more.length, 0, `one notice in three runs: ${x.of(a.slug).map((n) => n.type)}`);
    assert.equal(required.type, "tenant_action_required");
    const d = required.data;
    assert.deepEqual(d.tenant, { id: (d.tenant as { id: string }).id, slug: a.slug });
    assert.equal(d.reason, "logged_out");
    assert.deepEqual(d.actions, ["scan_qr_code", "request_pairing_code"]);
    assert.match(String(d.message), /logged out/);
    assert.equal(required.id, `tenant_action_required:${d.episodeId}`);
    const [{ id }] = await testSql()<{ id: string }[]>`select id from public.tenants where slug = ${a.slug}`;
    assert.equal((d.tenant as { id: string }).id, id);
    for (const other of [banned, fine]) {
      assert.equal(required.raw.includes(other.slug), false, `${other.slug} is not in ${a.slug}'s notice`);
    }
    for (const secret of [a.instance, x.f.sim.url, x.f.sim.apiKey]) {
      assert.equal(required.raw.includes(secret), false, `no instance, server or key in a tenant's notice`);
    }

    const [ban] = x.of(banned.slug);
    assert.deepEqual([ban.type, ban.data.reason], ["tenant_action_required", "banned"]);
    assert.equal(ban.raw.includes(a.slug), false);
    assert.equal(x.of(fine.slug).length, 0, "a connected number asks nothing of its owner");

    // the owner asks for a pairing code instead of a QR code: the episode goes on, nothing new is sent
    const code = await x.ops("pairing-code", { slug: a.slug, number: `+${NUMBER}` });
    assert.equal(code.status, 200, code.text);
    assert.equal(code.json.ok, true, code.text);
    assert.match(code.json.pairingCode, /^[1-9A-HJ-NP-TV-Z]{8}$/);
    await x.run(...all);
    const [h] = await testSql()<{ issue_code: string; evolution_state: string }[]>`
      select issue_code, evolution_state from maintenance.tenant_health where tenant_slug = ${a.slug}`;
    assert.deepEqual([h.issue_code, h.evolution_state], ["instance_disconnected", "connecting"]);
    assert.equal(x.of(a.slug).length, 1, "waiting for the code is the same episode");

    // typed on the phone: paired, open again
    x.f.sim.control.enterPairingCode(a.instance, code.json.pairingCode);
    for (let i = 0; i < 3; i++) await x.run(...all);
    await waitFor("the done notice", () => Promise.resolve(x.of(a.slug).length >= 2 || null), 5000);
    const [, done, ...after] = x.of(a.slug);
    assert.equal(after.length, 0, "one done");
    assert.equal(done.type, "tenant_action_done");
    assert.equal(done.data.episodeId, d.episodeId);
    assert.equal(done.data.lastReason, "pairing_pending");
    assert.equal(done.id, `tenant_action_done:${d.episodeId}`);
    assert.ok(Date.parse(String(done.data.doneAt)) >= Date.parse(String(d.since)));
    assert.equal(x.of(banned.slug).length, 1, "the banned number is still waiting: no done");

    // a later logout is a new episode, told again
    x.f.sim.control.setState(a.instance, "close");
    await x.run(a.slug);
    await waitFor("a new episode", () => Promise.resolve(x.of(a.slug).length >= 3 || null), 5000);
    const third = x.of(a.slug)[2];
    assert.equal(third.type, "tenant_action_required");
    assert.notEqual(third.data.episodeId, d.episodeId);
    assert.equal(x.r.control.received("slack").length, 0, "a tenant's notice goes to the application only");
  } finally {
    await x.r.close();
    await x.f.close();
  }
});

Deno.test("without an application webhook nothing is queued, and an episode that ended untold is never told later", async () => {
  const f = await healthFixture();
  try {
    const t = await f.tenant("tn-none");
    await f.run([t.slug]);
    f.sim.control.setState(t.instance, "close");
    await f.run([t.slug]);
    const [n] = await testSql()<{ reason: string; required_queued_at: Date | null; closed_at: Date | null }[]>`
      select reason, required_queued_at, closed_at from maintenance.tenant_notices where tenant_slug = ${t.slug}`;
    assert.deepEqual([n.reason, n.required_queued_at, n.closed_at], ["logged_out", null, null]);
    const [{ rows }] = await testSql()<{ rows: number }[]>`
      select count(*)::int as rows from maintenance.notification_outbox
      where kind like 'tenant_action%' and payload -> 'tenant' ->> 'slug' = ${t.slug}`;
    assert.equal(rows, 0);
    f.sim.control.scan(t.instance);
    await f.run([t.slug]);
    const [{ notices }] = await testSql()<{ notices: unknown }[]>`
      select maintenance.queue_tenant_notices(array['webhook:0123abcd']) as notices`;
    assert.deepEqual(notices, { required: 0, done: 0 }, "closed before any webhook existed: nothing to tell");
  } finally {
    await f.close();
  }
});

Deno.test("pairing-code: bad numbers are 400s naming the field, an unknown tenant 404, a connected number 409; each call audited without the code", async () => {
  const x = await noticeFixture();
  try {
    for (
      const [number, why] of [["12345", /at least 10/], ["55 11 9876-5432", /digits only/], [
        "1".repeat(16),
        /at most 15/,
      ]]
    ) {
      const r = await x.ops("pairing-code", { slug: "tn-nobody", number });
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, /number/);
      assert.match(r.text, why as RegExp);
    }
    const extra = await x.ops("pairing-code", { slug: "tn-nobody", number: NUMBER, code: "x" });
    assert.equal(extra.status, 400, extra.text);
    const missing = await x.ops("pairing-code", { slug: "tn-nobody", number: NUMBER });
    assert.equal(missing.status, 404, missing.text);

    const t = await x.f.tenant("tn-pc");
    const open = await x.ops("pairing-code", { slug: t.slug, number: NUMBER });
    assert.equal(open.status, 409, open.text);
    assert.match(open.text, /already connected/);

    // a pairing in progress with QR codes (no number): closed, then started again for the number
    x.f.sim.control.setState(t.instance, "close");
    const qr = await x.ops("reconnect", { slug: t.slug });
    assert.equal(qr.json.connect?.kind, "qr", qr.text);
    const r = await x.ops("pairing-code", { slug: t.slug, number: NUMBER });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.ok, true, r.text);
    assert.match(r.json.pairingCode, /^[1-9A-HJ-NP-TV-Z]{8}$/);
    assert.equal(r.json.number, maskNumber(NUMBER));
    assert.equal(r.json.number, "+55*******4321");
    assert.throws(() => x.f.sim.control.enterPairingCode(t.instance, "AAAAAAAA"), /Wrong pairing code/);
    x.f.sim.control.enterPairingCode(t.instance, `${r.json.pairingCode.slice(0, 4)}-${r.json.pairingCode.slice(4)}`);
    await waitFor(
      "open",
      () => Promise.resolve(x.f.sim.control.instances().find((i) => i.name === t.instance)?.state === "open" || null),
      5000,
    );

    const audit = await testSql()<{ action: string; result: string; before: unknown; after: unknown }[]>`
      select action, result, before, after from maintenance.actions_audit
      where tenant_slug = ${t.slug} and action like 'pairing-code.%' order by id`;
    assert.deepEqual(audit.map((a) => `${a.action}:${a.result}`), [
      "pairing-code.state:ok",
      "pairing-code.connect:refused",
      "pairing-code.state:ok",
      "pairing-code.close_pairing:ok",
      "pairing-code.connect:ok",
    ]);
    const text = JSON.stringify(audit);
    assert.equal(text.includes(r.json.pairingCode), false, "the code is answered, never stored");
    assert.equal(text.includes(NUMBER), false, "the number is masked");
    assert.match(text, /\+55\*+4321/);
  } finally {
    await x.r.close();
    await x.f.close();
  }
});

Deno.test("PairingNumber takes E.164 with or without +, digits only, 10 to 15 of them", () => {
  assert.equal(PairingNumber.parse(" +5511987654321 "), "5511987654321");
  assert.equal(PairingNumber.parse("1234567890"), "1234567890");
  for (const bad of ["+", "123456789", "1234567890123456", "55-11-98765-4321", "+55 11 987654321"]) {
    assert.equal(PairingNumber.safeParse(bad).success, false, bad);
  }
  assert.equal(maskNumber("1234567890"), "+12****7890");
});

Deno.test("a logout, a reconnect whose QR codes run out, and a scan are one episode: one required, one done", async () => {
  const x = await noticeFixture();
  try {
    const t = await x.f.tenant("tn-scan");
    await x.run(t.slug);
    x.f.sim.control.setState(t.instance, "close");
    await x.run(t.slug);
    const qr = await x.ops("reconnect", { slug: t.slug });
    assert.equal(qr.json.connect?.kind, "qr", qr.text);
    x.f.sim.control.qrLimit(t.instance); // nobody scanned: the limit
    await x.run(t.slug);
    const [n] = await testSql()<{ reason: string; last_reason: string }[]>`
      select reason, last_reason from maintenance.tenant_notices where tenant_slug = ${t.slug} and closed_at is null`;
    assert.deepEqual([n.reason, n.last_reason], ["logged_out", "qr_limit"]);
    const again = await x.ops("reconnect", { slug: t.slug });
    assert.equal(again.json.connect?.kind, "qr", again.text);
    x.f.sim.control.scan(t.instance);
    for (let i = 0; i < 2; i++) await x.run(t.slug);
    await waitFor("the done notice", () => Promise.resolve(x.of(t.slug).length >= 2 || null), 5000);
    assert.deepEqual(x.of(t.slug).map((e) => [e.type, e.data.reason]), [
      ["tenant_action_required", "logged_out"],
      ["tenant_action_done", "logged_out"],
    ]);
    assert.equal(x.of(t.slug)[1].data.lastReason, "qr_limit", "the last state a run recorded before it opened");
  } finally {
    await x.r.close();
    await x.f.close();
  }
});
