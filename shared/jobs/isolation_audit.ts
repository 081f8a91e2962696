/**
 * @module
 * The `isolation-audit` job (logic lands with its issue; until then the run row, auth and validation are real).
 */
import { z } from "zod";
import type { JobDefinition } from "./runner.ts";

/** Input accepted by `isolation-audit`. */
export const IsolationAuditInput = z.object({});
export type IsolationAuditInput = z.infer<typeof IsolationAuditInput>;

/** The `isolation-audit` job. */
export const isolationAudit: JobDefinition<typeof IsolationAuditInput> = {
  name: "isolation-audit",
  input: IsolationAuditInput,
  run() {
    return Promise.resolve({ status: "ok", report: { implemented: false } });
  },
};
