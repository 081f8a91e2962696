// Slack and email text is escaped: a slug or an Evolution error carrying `<!channel>`, `<!here>`, `<@U…>` or `&`
// reaches the local Slack and email receivers as text to show, never as a mention, a link or markup.
import assert from "node:assert/strict";
import { startSimulator } from "../dev/evolution_sim/app.ts";
import { type Received, startReceivers } from "../dev/receivers.ts";
import { emailMessage, escapeText, type Notification, slackMessage } from "../shared/alerts/channels.ts";
import { createNotifier } from "../shared/alerts/notify.ts";
import { runHealthCheck } from "../shared/jobs/health_check.ts";
import { createTenant, testConfig, testDeps, testSql } from "./_helpers.ts";

const HOSTILE = "<!channel> <!here> <!everyone> <@U024BE7LH> <#C024BE7LR> <https://evil.example|click> a&b <b>x</b>";

/** Every string anywhere in a JSON value. */
function strings(v: unknown): string[] {
  if (typeof v === "string") return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  if (v && typeof v === "object") return Object.values(v).flatMap(strings);
  return [];
}

function unescape(s: string): string {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

/** Asserts that no text of a received body holds a control character Slack (or HTML) would act on. */
function assertInert(body: Record<string, unknown>, what: string) {
  for (const s of strings(body)) {
    assert.ok(!/[<>]/.test(s), `${what}: no raw < or > in ${JSON.stringify(s)}`);
    assert.ok(!/&(?!amp;|lt;|gt;)/.test(s), `${what}: every & is an entity in ${JSON.stringify(s)}`);
  }
}

Deno.test("slackMessage() and emailMessage() escape &, < and > in every text, losslessly", () => {
  const m: Notification = {
    severity: "critical",
    title: `Tenant ${HOSTILE}`,
    text: `Evolution said: ${HOSTILE}`,
    fields: { [`slug ${HOSTILE}`]: HOSTILE, count: 3 },
  };
  const slack = slackMessage(m);
  assertInert(slack, "slack");
  assert.equal(unescape(String(slack.text)), `🔴 Tenant ${HOSTILE}`, "Slack shows exactly the original text");
  const blocks = slack.blocks as Array<{ type: string; text?: { type: string; verbatim?: boolean } }>;
  assert.equal(blocks[1].text?.verbatim, true, "mrkdwn objects are verbatim: no bare @here or #channel parsed");
  assert.ok(JSON.stringify(slack).includes("&lt;!channel&gt;"));
  const email = emailMessage(m);
  assertInert(email, "email");
  assert.equal(unescape(email.subject), `[CRITICAL] Tenant ${HOSTILE}`);
  assert.match(unescape(email.text), /^Evolution said: <!channel>/);
  // cut at the limit without leaving half an entity
  for (let max = 1; max < 30; max++) {
    const cut = escapeText("<<<&&&>>>", max);
    assert.ok(cut.length <= max && !/&[a-z]*$/.test(cut.replace(/&(amp|lt|gt);/g, "")), `max ${max}: ${cut}`);
  }
});

Deno.test("notify.send() with a slug carrying <!channel> reaches the Slack and email receivers escaped", async () => {
  const rx = await startReceivers();
  try {
    const config = testConfig({
      SLACK_WEBHOOK_URL: rx.slackUrl,
      ALERT_EMAIL_TO: "ops@example.test",
      EMAIL_API_URL: rx.emailUrl,
      EMAIL_API_KEY: rx.emailApiKey,
      ALERT_LOG: "false",
    });
    const notify = createNotifier(config, { sql: testSql() });
    const marker = crypto.randomUUID().slice(0, 8);
    const slug = `Legacy_<!channel>_${marker}`;
    await notify.send({
      severity: "warning",
      title: `${slug}: WhatsApp not connected`,
      text: `tenant '${slug}' & <@U024BE7LH>: <!here>`,
      fields: { tenant: slug },
      dedupeKey: `escape-${marker}`,
    });
    const got = (channel: "slack" | "email") =>
      rx.control.received(channel).filter((r: Received) => JSON.stringify(r.body).includes(marker));
    assert.equal(got("slack").length, 1);
    assert.equal(got("email").length, 1);
    assertInert(got("slack")[0].body, "slack");
    assertInert(got("email")[0].body, "email");
    assert.ok(String(got("slack")[0].body.text).includes(`Legacy_&lt;!channel&gt;_${marker}`));
    assert.match(String(got("email")[0].body.text), /&amp; &lt;@U024BE7LH&gt;: &lt;!here&gt;/);
  } finally {
    await rx.close();
  }
});

Deno.test("healthCheck(): an Evolution error text carrying <!channel> reaches Slack and email escaped", async () => {
  const sim = await startSimulator({ port: 0 });
  const rx = await startReceivers();
  const { slug } = await createTenant({ prefix: "esc" });
  try {
    const deps = testDeps({
      env: {
        EVOLUTION_API_URL: sim.url,
        EVOLUTION_API_KEY: sim.apiKey,
        SLACK_WEBHOOK_URL: rx.slackUrl,
        ALERT_EMAIL_TO: "ops@example.test",
        EMAIL_API_URL: rx.emailUrl,
        EMAIL_API_KEY: rx.emailApiKey,
        ALERT_LOG: "false",
      },
    });
    // connecting: health-check asks connectionState, which fails with Evolution's own message
    sim.control.seedInstance(`revalya-${slug}`, { state: "connecting" });
    sim.control.fault({ route: "connectionState", kind: "status500", message: `boom ${HOSTILE}` });
    const mine = (channel: "slack" | "email") =>
      rx.control.received(channel).filter((r) => JSON.stringify(r.body).includes(slug));
    for (let i = 0; i < 4 && !(mine("slack").length && mine("email").length); i++) {
      const out = await runHealthCheck(deps, { runId: crypto.randomUUID(), input: { tenants: [slug] } });
      assert.notEqual(out.status, "error", JSON.stringify(out.report));
    }
    await deps.evolution.flushLogs();
    assert.ok(mine("slack").length >= 1, "the check_error alert reached Slack");
    assert.ok(mine("email").length >= 1, "and email");
    for (const r of [...mine("slack"), ...mine("email")]) {
      assertInert(r.body, r.channel);
      const all = strings(r.body).join("\n");
      assert.ok(all.includes("boom &lt;!channel&gt; &lt;!here&gt;"), `Evolution's text is shown escaped: ${all}`);
    }
  } finally {
    await testSql()`delete from public.tenants where slug = ${slug}`;
    await sim.close();
    await rx.close();
  }
});
