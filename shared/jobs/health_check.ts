/**
 * @module
 * The `health-check` job (logic lands with its issue; until then the run row, auth and validation are real).
 */
import { z } from "zod";
import type { JobDefinition } from "./runner.ts";

/** Input accepted by `health-check`. */
export const HealthCheckInput = z.object({});
export type HealthCheckInput = z.infer<typeof HealthCheckInput>;

/** The `health-check` job. */
export const healthCheck: JobDefinition<typeof HealthCheckInput> = {
  name: "health-check",
  input: HealthCheckInput,
  run() {
    return Promise.resolve({ status: "ok", report: { implemented: false } });
  },
};
