/**
 * @module
 * The `orphan-cleanup` job (logic lands with its issue; until then the run row, auth and validation are real).
 */
import { z } from "zod";
import type { JobDefinition } from "./runner.ts";

/** Input accepted by `orphan-cleanup`. */
export const OrphanCleanupInput = z.object({});
export type OrphanCleanupInput = z.infer<typeof OrphanCleanupInput>;

/** The `orphan-cleanup` job. */
export const orphanCleanup: JobDefinition<typeof OrphanCleanupInput> = {
  name: "orphan-cleanup",
  input: OrphanCleanupInput,
  run() {
    return Promise.resolve({ status: "ok", report: { implemented: false } });
  },
};
