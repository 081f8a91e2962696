/**
 * @module
 * What the seed-procedure tests (seed_procedures_test.ts, seed_procedures_repairs_test.ts) share: the simulator
 * options they run with (its real defaults, clocks compressed), the tenant's instance as the simulator holds it,
 * and the check that an instance's webhook is its tenant's (v2: the token header; v1.8: the token in the URL).
 */
import assert from "node:assert/strict";
import type { SimInstanceView, Simulator, SimulatorOptions } from "../dev/evolution_sim/app.ts";
import { WEBHOOK_TOKEN_HEADER, WEBHOOK_TOKEN_PARAM, webhookToken, webhookUrl } from "../shared/naming.ts";
import type { OpsFixture } from "./ops_fixture.ts";

/**
 * The simulator's real defaults (deletion hold and clean-up, stored vs memory state, local `date_time`, QR counts,
 * `GET /` latency), its server clocks 20× faster: the same behaviour, shorter waits.
 */
export const SIM_OPTIONS: SimulatorOptions = { timeScale: 0.05 };

/** The live (phase `active`) instance of a tenant on `sim` (default: the fixture's); fails when there is none. */
export function instanceOf(f: OpsFixture, slug: string, sim: Simulator = f.sim): SimInstanceView {
  const name = `${f.deps.config.instancePrefix}${slug}`;
  const live = sim.control.instances().filter((i) => i.name === name && i.phase === "active");
  assert.equal(live.length, 1, `one live instance '${name}': ${JSON.stringify(sim.control.instances())}`);
  return live[0];
}

/**
 * The instance's webhook is its tenant's: enabled, the tenant's URL, and its token as a header (2.x) or, on 1.8,
 * which stores no webhook headers, as `?token=` in the URL. The token is recomputed here, not read from the client.
 */
export async function assertRightWebhook(
  f: OpsFixture,
  version: string,
  slug: string,
  inst: SimInstanceView,
): Promise<void> {
  const { webhookBaseUrl, webhookSecret } = f.deps.config;
  const token = await webhookToken(slug, webhookSecret);
  const url = webhookUrl(slug, webhookBaseUrl);
  assert.ok(inst.webhook, `'${inst.name}' has a webhook`);
  assert.equal(inst.webhook.enabled, true, `the webhook of '${inst.name}' is enabled`);
  if (version.startsWith("1.")) {
    assert.equal(inst.webhook.url, `${url}?${WEBHOOK_TOKEN_PARAM}=${token}`, "1.8: the token is in the URL");
  } else {
    assert.equal(inst.webhook.url, url);
    assert.equal(inst.webhook.headers?.[WEBHOOK_TOKEN_HEADER], token, "2.x: the token is a header");
  }
  assert.ok(inst.webhook.events.includes("CONNECTION_UPDATE"), "subscribed to connection.update");
}
