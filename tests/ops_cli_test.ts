// The operator CLI (dev/ops.ts) run as a process against the test stack: supabase-js functions.invoke through the
// real functions, readable output, --json, and the exit status (0 healthy, 1 unhealthy, 2 refused).
import assert from "node:assert/strict";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../shared/naming.ts";
import { createTenant, stack } from "./_helpers.ts";

async function ops(...args: string[]) {
  const s = stack();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "dev/ops.ts", ...args],
    env: {
      SUPABASE_URL: s.functionsUrl.replace(/\/functions\/v1$/, ""),
      SUPABASE_SECRET_KEY: s.secretKey,
      DENO_TLS_CA_STORE: "system",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Seeds a correct instance in the test stack's simulator (over its HTTP control API). */
async function seedOnStack(slug: string, state: "open" | "close" = "open") {
  const s = stack();
  const headers = { [WEBHOOK_TOKEN_HEADER]: await webhookToken(slug, s.webhookSecret) };
  const res = await fetch(`${s.evolutionUrl}/_control/seedInstance`, {
    method: "POST",
    body: JSON.stringify([`revalya-${slug}`, {
      state,
      webhookUrl: `${s.webhookBaseUrl}/api/whatsapp/webhook/${slug}`,
      webhookHeaders: headers,
    }]),
  });
  assert.equal(res.status, 200, await res.text());
}

Deno.test("ops CLI: help, diagnose healthy/unhealthy with exit codes, refused reset, audit --json, status", async (t) => {
  await t.step("--help prints the usage and exits 0", async () => {
    const r = await ops("--help");
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: npm run ops -- <command>/);
    assert.match(r.stdout, /reset <slug> --confirm <slug> \[--apply\]/);
  });
  await t.step("an unknown command exits 2", async () => {
    const r = await ops("explode");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command 'explode'/);
  });
  const healthy = await createTenant({ prefix: "cli-ok" });
  await seedOnStack(healthy.slug);
  await t.step("diagnose of a healthy tenant: readable summary, exit 0", async () => {
    const r = await ops("diagnose", healthy.slug);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, new RegExp(`${healthy.slug} \\(revalya-${healthy.slug}\\): healthy`));
    assert.match(r.stdout, /connection\s+ok/);
  });
  await t.step("diagnose of a tenant without instance: exit 1, --json gives the raw answer", async () => {
    const { slug } = await createTenant({ prefix: "cli-bad" });
    const r = await ops("diagnose", slug, "--json");
    assert.equal(r.code, 1);
    const body = JSON.parse(r.stdout);
    assert.equal(body.connection.code, "instance_not_found");
  });
  await t.step("reset without the right confirm is refused: exit 2, the message names confirm", async () => {
    const r = await ops("reset", healthy.slug, "--confirm", "nope", "--apply");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /400 confirm_mismatch: Cannot reset integration as 'confirm' must equal the tenant slug/);
  });
  await t.step("an unknown tenant is a 404: exit 2", async () => {
    const r = await ops("fix", "cli-no-such-tenant");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /404 not_found/);
  });
  await t.step("audit --tenant runs isolation-audit as a dry run for that tenant", async () => {
    const r = await ops("audit", "--tenant", healthy.slug, "--json");
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const body = JSON.parse(r.stdout);
    assert.equal(body.job, "isolation-audit");
    assert.equal(body.dryRun, true);
    assert.equal(body.report.violationCount, 0);
  });
  await t.step(
    "pairing-code: without --number exit 2; a connected number is refused (409, exit 2); a logged-out one gets its code",
    async () => {
      const usage = await ops("pairing-code", healthy.slug);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /pairing-code needs --number/);
      const bad = await ops("pairing-code", healthy.slug, "--number", "12-34");
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /400 .*number/);
      const open = await ops("pairing-code", healthy.slug, "--number", "+5511987654321");
      assert.equal(open.code, 2, open.stdout + open.stderr);
      assert.match(open.stderr, /409 already_connected/);
      const { slug } = await createTenant({ prefix: "cli-pc" });
      await seedOnStack(slug, "close");
      const r = await ops("pairing-code", slug, "--number", "+5511987654321");
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /pairing code\s+[1-9A-HJ-NP-TV-Z]{8} for \+55\*+4321/);
      assert.match(r.stdout, /Link with phone number instead/);
    },
  );
  await t.step("status lists the latest job runs and the tenant's actions", async () => {
    const r = await ops("status", healthy.slug, "--json");
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout);
    assert.ok(body.jobs.some((j: { job: string }) => j.job === "isolation-audit"));
    assert.ok(
      body.recentActions.some((a: { action: string; result: string }) =>
        a.action === "reset.confirm" && a.result === "refused"
      ),
    );
  });
});
