// The `whatsapp-ops` function: parse config, build dependencies, serve the app.
import { loadConfig } from "../../../shared/config.ts";
import { buildDeps } from "../../../shared/deps.ts";
import { createOpsApp } from "../../../shared/ops/app.ts";

Deno.serve(createOpsApp(buildDeps(loadConfig())).fetch);
