/**
 * @module
 * The `weekly-report` job (logic lands with its issue; until then the run row, auth and validation are real).
 */
import { z } from "zod";
import type { JobDefinition } from "./runner.ts";

/** Input accepted by `weekly-report`. */
export const WeeklyReportInput = z.object({});
export type WeeklyReportInput = z.infer<typeof WeeklyReportInput>;

/** The `weekly-report` job. */
export const weeklyReport: JobDefinition<typeof WeeklyReportInput> = {
  name: "weekly-report",
  input: WeeklyReportInput,
  run() {
    return Promise.resolve({ status: "ok", report: { implemented: false } });
  },
};
