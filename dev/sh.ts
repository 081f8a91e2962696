/**
 * @module
 * The two process helpers the dev scripts share: whether a path exists, and running a command to completion (its
 * output as text, or an error carrying the output when it fails).
 */
import { ROOT } from "./paths.ts";

/** Whether `path` exists (file, folder or anything else). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Runs `cmd` (in the project root unless `cwd`), returns stdout + stderr; throws with the output on failure. */
export async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    env: opts.env,
    cwd: opts.cwd ?? ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${text.slice(-4000)}`);
  return text;
}
