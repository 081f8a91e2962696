// The `orphan-cleanup` scheduled function: parse config, build dependencies, serve the job's app.
import { loadConfig } from "../../../shared/config.ts";
import { buildDeps } from "../../../shared/deps.ts";
import { createJobApp } from "../../../shared/jobs/app.ts";
import { orphanCleanup } from "../../../shared/jobs/orphan_cleanup.ts";

Deno.serve(createJobApp(orphanCleanup, buildDeps(loadConfig())).fetch);
