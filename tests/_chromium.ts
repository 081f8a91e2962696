/**
 * @module
 * Debian's Chromium for the browser tests, driven by playwright-core (never `playwright install`): its path, the
 * headless flags, an install step for a root machine that lacks it, and the browser the page tests open.
 */
import { type Browser, chromium, type Page } from "playwright-core";

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

/**
 * Launches headless Chromium (installing it first if need be) and opens a 1400 × 900 page that records, and
 * dismisses, every dialog (a dialog means a script ran). Close `browser` when done.
 */
export async function openPage(): Promise<{ browser: Browser; page: Page; dialogs: string[] }> {
  await ensureChromium();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const dialogs: string[] = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  return { browser, page, dialogs };
}
