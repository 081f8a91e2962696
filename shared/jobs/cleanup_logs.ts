/**
 * @module
 * The `cleanup-logs` job (logic lands with its issue; until then the run row, auth and validation are real).
 */
import { z } from "zod";
import type { JobDefinition } from "./runner.ts";

/** Input accepted by `cleanup-logs`. */
export const CleanupLogsInput = z.object({});
export type CleanupLogsInput = z.infer<typeof CleanupLogsInput>;

/** The `cleanup-logs` job. */
export const cleanupLogs: JobDefinition<typeof CleanupLogsInput> = {
  name: "cleanup-logs",
  input: CleanupLogsInput,
  run() {
    return Promise.resolve({ status: "ok", report: { implemented: false } });
  },
};
