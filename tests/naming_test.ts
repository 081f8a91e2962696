// Slug validation and the names derived from a slug (instance name, webhook URL, webhook token).
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { ValidationError } from "../shared/errors.ts";
import {
  instanceName,
  instanceSuffix,
  isSlug,
  parseSlug,
  slugFromInstance,
  tenantOfInstance,
  WEBHOOK_TOKEN_HEADER,
  webhookToken,
  webhookUrl,
} from "../shared/naming.ts";

Deno.test("parseSlug() rejects path tricks, upper case, look-alikes and huge values with a 400 naming the field", () => {
  const bad = ["../x", "a%2Fb", "a/b", "ACME", "аcme", /* Cyrillic а */ "acme\u200b", "-acme", "acme-", "a--b", ""];
  for (const value of [...bad, "x".repeat(10_000), null, 42]) {
    assert.throws(() => parseSlug(value, "tenant"), (e) => {
      assert.ok(e instanceof ValidationError);
      assert.equal(e.status, 400);
      assert.match(e.message, /^Invalid 'tenant'/);
      assert.ok(e.message.length < 400, "a huge value is not echoed back whole");
      return true;
    });
    assert.equal(isSlug(value), false);
  }
  for (const good of ["acme", "acme-2", "a", "0-9", "x".repeat(63)]) assert.equal(parseSlug(good), good);
});

Deno.test("instanceName(), webhookUrl() and slugFromInstance() follow the seed's convention", () => {
  assert.equal(instanceName("acme", "revalya-"), "revalya-acme");
  assert.equal(webhookUrl("acme", "https://x.test/fn/"), "https://x.test/fn/api/whatsapp/webhook/acme");
  assert.equal(slugFromInstance("revalya-acme", "revalya-"), "acme");
  assert.equal(slugFromInstance("other-acme", "revalya-"), null);
  assert.equal(slugFromInstance("revalya-../x", "revalya-"), null);
});

Deno.test("webhookToken() is the hex HMAC-SHA256 of the slug under the secret", async () => {
  const secret = "whsec_0123456789abcdef";
  const expected = createHmac("sha256", secret).update("acme").digest("hex");
  assert.equal(await webhookToken("acme", secret), expected);
  assert.notEqual(await webhookToken("acme2", secret), expected);
  assert.notEqual(await webhookToken("acme", secret + "x"), expected);
  assert.equal(WEBHOOK_TOKEN_HEADER, "x-webhook-token");
  await assert.rejects(webhookToken("../acme", secret), ValidationError);
});

Deno.test("tenantOfInstance() maps an instance to its existing tenant whatever the slug's format", () => {
  const tenants = new Set(["acme", "Legacy_Co", "ACME.BR", "dots.co.uk"]);
  for (const slug of tenants) assert.equal(tenantOfInstance(`revalya-${slug}`, "revalya-", tenants), slug);
  assert.equal(instanceSuffix("revalya-Legacy_Co", "revalya-"), "Legacy_Co");
  assert.equal(slugFromInstance("revalya-Legacy_Co", "revalya-"), null, "not a slug of today's format…");
  assert.equal(tenantOfInstance("revalya-Legacy_Co", "revalya-", tenants), "Legacy_Co", "…but its tenant's instance");
  assert.equal(tenantOfInstance("revalya-legacy_co", "revalya-", tenants), null, "the slug as stored: case counts");
  assert.equal(tenantOfInstance("revalya-Ghost_Co", "revalya-", tenants), null, "no such tenant");
  assert.equal(tenantOfInstance("other-acme", "revalya-", tenants), null, "not our prefix");
  assert.equal(tenantOfInstance("revalya-", "revalya-", new Set([""])), null, "nothing after the prefix");
});
