/**
 * @module
 * Debian's Chromium for the browser tests, driven by playwright-core (never `playwright install`): its path, the
 * headless flags, and an install step for a root machine that lacks it.
 */

/** Where Debian installs Chromium. */
export const CHROMIUM = "/usr/bin/chromium";

/** Launch flags: headless, no sandbox (root in a container), nothing that reaches the network on its own. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Installs Debian's chromium when it is missing and we are root (never `playwright install`). */
export async function ensureChromium(): Promise<void> {
  try {
    await Deno.stat(CHROMIUM);
    return;
  } catch { /* missing */ }
  if (Deno.uid() !== 0) throw new Error(`${CHROMIUM} is missing and the test is not root: apt-get install chromium`);
  for (const args of [["install", "-y", "--no-install-recommends", "chromium"], ["update"]]) {
    const out = await new Deno.Command("apt-get", { args, stdout: "null", stderr: "piped" }).output();
    if (args[0] === "install" && out.success) return;
    if (args[0] === "update" && !out.success) throw new Error(new TextDecoder().decode(out.stderr));
  }
  const retry = await new Deno.Command("apt-get", {
    args: ["install", "-y", "--no-install-recommends", "chromium"],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!retry.success) throw new Error(`apt-get install chromium failed: ${new TextDecoder().decode(retry.stderr)}`);
}
