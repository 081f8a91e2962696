/**
 * @module
 * Whether an instance's webhook, as Evolution stores it, is the one its tenant must have: the expected URL, the
 * tenant's token header, enabled. One check for `diagnose` (`webhook_mismatch`), `migrate` (verifying the new
 * instance) and the isolation audit (`instance_webhook_mismatch`).
 */
import { redactWebhookUrl, WEBHOOK_TOKEN_HEADER } from "../naming.ts";
import type { WebhookConfig } from "./types.ts";

/** The verdict of {@link webhookCheck}: each part, the URLs, and no secret. */
export interface WebhookCheck {
  ok: boolean;
  url: string | null;
  expectedUrl: string;
  urlOk: boolean;
  tokenOk: boolean;
  enabled: boolean;
}

/**
 * Compares an instance's webhook (null: none stored) with the expected URL, token and enabled flag (no secret in
 * the result). `expected` is what `EvolutionClient.expectedWebhook(slug)` answers: on 1.8 the token is in the URL
 * (so the URL's match is the token's), on 2.x in the header.
 */
export function webhookCheck(
  hook: WebhookConfig | null,
  expected: { url: string; headers: Record<string, string> },
): WebhookCheck {
  const urlOk = hook?.url === expected.url;
  const wanted = expected.headers[WEBHOOK_TOKEN_HEADER];
  const tokenOk = wanted === undefined ? urlOk : hook?.headers?.[WEBHOOK_TOKEN_HEADER] === wanted;
  const enabled = hook?.enabled === true;
  return {
    ok: urlOk && tokenOk && enabled,
    url: redactWebhookUrl(hook?.url ?? null),
    expectedUrl: redactWebhookUrl(expected.url),
    urlOk,
    tokenOk,
    enabled,
  };
}
