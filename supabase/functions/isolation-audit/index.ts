// The `isolation-audit` scheduled function: parse config, build dependencies, serve the job's app.
import { loadConfig } from "../../../shared/config.ts";
import { buildDeps } from "../../../shared/deps.ts";
import { createJobApp } from "../../../shared/jobs/app.ts";
import { isolationAudit } from "../../../shared/jobs/isolation_audit.ts";

Deno.serve(createJobApp(isolationAudit, buildDeps(loadConfig())).fetch);
