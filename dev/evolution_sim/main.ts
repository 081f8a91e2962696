/**
 * The Evolution API simulator as a process (the local stack starts it): listens on `EVOLUTION_PORT` (8080) with the
 * global key `EVOLUTION_API_KEY`. Optional: `EVOLUTION_SIM_VERSION` (2.3.7 | 2.4.0 | 1.8.6),
 * `EVOLUTION_SIM_TIME_SCALE` (multiplies the server's own clocks), `EVOLUTION_SIM_WEBHOOK_RETRY_MS`
 * (comma-separated delays between webhook attempts), `EVOLUTION_SIM_QR_INTERVAL_MS`, `EVOLUTION_SIM_CLEANUP_DELAY_MS`,
 * `EVOLUTION_SIM_UTC_OFFSET_MINUTES` (default -180), `EVOLUTION_SIM_LICENSE_ACTIVATED=1` (2.4.0). Control API: README.
 */
import { type SimVersion, startSimulator } from "./app.ts";

const env = Deno.env.toObject();
const num = (name: string) => (env[name] !== undefined && env[name] !== "" ? Number(env[name]) : undefined);
const version = (env.EVOLUTION_SIM_VERSION ?? "2.3.7") as SimVersion;
if (!["2.3.7", "2.4.0", "1.8.6"].includes(version)) {
  throw new Error("EVOLUTION_SIM_VERSION must be 2.3.7, 2.4.0 or 1.8.6");
}
const retry = env.EVOLUTION_SIM_WEBHOOK_RETRY_MS?.split(",").map((s) => Number(s.trim())).filter((n) => n >= 0);
const sim = await startSimulator({
  port: Number(env.EVOLUTION_PORT ?? "8080"),
  apiKey: env.EVOLUTION_API_KEY ?? "BQYHJGJHJ",
  version,
  timeScale: num("EVOLUTION_SIM_TIME_SCALE"),
  webhookRetryDelaysMs: retry?.length ? retry : undefined,
  qrIntervalMs: num("EVOLUTION_SIM_QR_INTERVAL_MS"),
  cleanupDelayMs: num("EVOLUTION_SIM_CLEANUP_DELAY_MS"),
  utcOffsetMinutes: num("EVOLUTION_SIM_UTC_OFFSET_MINUTES"),
  licenseActivated: env.EVOLUTION_SIM_LICENSE_ACTIVATED === "1",
});
console.log(`Evolution simulator ${version} on ${sim.url}`);
