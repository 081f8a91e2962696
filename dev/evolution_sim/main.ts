/**
 * The Evolution API simulator as a process (the local stack starts it): listens on `EVOLUTION_PORT` (8080) with the
 * global key `EVOLUTION_API_KEY`. Optional: `EVOLUTION_SIM_VERSION` (2.3.7 | 1.8.6), `EVOLUTION_SIM_WEBHOOK_RETRY_MS`
 * (comma-separated delays between webhook attempts), `EVOLUTION_SIM_QR_INTERVAL_MS`. Control API: see README.
 */
import { type SimVersion, startSimulator } from "./app.ts";

const env = Deno.env.toObject();
const version = (env.EVOLUTION_SIM_VERSION ?? "2.3.7") as SimVersion;
if (version !== "2.3.7" && version !== "1.8.6") throw new Error("EVOLUTION_SIM_VERSION must be 2.3.7 or 1.8.6");
const retry = env.EVOLUTION_SIM_WEBHOOK_RETRY_MS?.split(",").map((s) => Number(s.trim())).filter((n) => n >= 0);
const sim = await startSimulator({
  port: Number(env.EVOLUTION_PORT ?? "8080"),
  apiKey: env.EVOLUTION_API_KEY ?? "BQYHJGJHJ",
  version,
  webhookRetryDelaysMs: retry?.length ? retry : undefined,
  qrIntervalMs: env.EVOLUTION_SIM_QR_INTERVAL_MS ? Number(env.EVOLUTION_SIM_QR_INTERVAL_MS) : undefined,
});
console.log(`Evolution simulator ${version} on ${sim.url}`);
