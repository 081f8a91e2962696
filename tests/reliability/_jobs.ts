/**
 * @module
 * The scheduled jobs by name, from the registry, for the matrices that run each of them.
 */
import { JOBS as REGISTRY } from "../../shared/jobs/mod.ts";
import type { JobDefinition } from "../../shared/jobs/runner.ts";

/** Every scheduled job, by its function name. */
export const JOBS: Record<string, JobDefinition> = Object.fromEntries(REGISTRY.map((j) => [j.name, j]));

/**
 * A job's input for a matrix case: its sample input, scoped to `tenants` where its input takes a tenant list, and
 * applying what it would change (`apply: true`) where it has that field and the case asks for it.
 */
export function matrixInput(
  def: JobDefinition,
  options: { tenants?: string[]; apply?: boolean } = {},
): Record<string, unknown> {
  const shape = def.input.shape as Record<string, unknown>;
  return {
    ...def.sampleInput as Record<string, unknown>,
    ...(options.tenants && "tenants" in shape ? { tenants: options.tenants } : {}),
    ...(options.apply && "apply" in shape ? { apply: true } : {}),
  };
}
