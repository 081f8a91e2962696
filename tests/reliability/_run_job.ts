/**
 * @module
 * A job run in a process of its own, for the fault matrix to kill mid-run:
 * `deno run -A tests/reliability/_run_job.ts <job> '<input JSON>'` (needs CANAIS_STACK_FILE, as under `npm test`).
 * Prints the run's response as JSON when it gets that far.
 */
import { runJob } from "../../shared/jobs/runner.ts";
import { JOBS } from "./_jobs.ts";
import { testDeps } from "../_helpers.ts";

const [name, input = "{}"] = Deno.args;
const job = JOBS[name as keyof typeof JOBS];
if (!job) throw new Error(`unknown job ${name}`);
const deps = testDeps();
const response = await runJob(deps, job, { input: job.input.parse(JSON.parse(input)) as never, trigger: "test" });
console.log(JSON.stringify(response));
Deno.exit(0);
