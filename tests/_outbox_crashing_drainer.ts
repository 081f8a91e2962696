/**
 * @module
 * A drainer that dies mid-send, for tests/outbox_lease_test.ts:
 * `deno run -A tests/_outbox_crashing_drainer.ts <timeoutMs> '<ids JSON>'` (needs CANAIS_STACK_FILE, as under
 * `npm test`). It drains the outbox with a Slack channel whose `deliver()` SIGKILLs the process: the first row is
 * claimed, and neither sent nor completed.
 */
import { drainOutbox } from "../shared/alerts/outbox.ts";
import { testSql } from "./_helpers.ts";

const [timeoutMs, ids] = Deno.args;
await drainOutbox(testSql(), [{
  name: "slack",
  timeoutMs: Number(timeoutMs),
  deliver: () => {
    Deno.kill(Deno.pid, "SIGKILL");
    return new Promise(() => {});
  },
}], { ids: JSON.parse(ids) });
console.log("still alive");
Deno.exit(1);
