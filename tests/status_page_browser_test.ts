// The status page rendered by a real browser (Debian's Chromium, headless, driven by playwright-core) against the
// test stack's status-page function: visible tenant states, the availability bar segments as laid out, the alert,
// the services, and a tenant name carrying a script that stays text. A screenshot goes to .local/status_page.png.
import assert from "node:assert/strict";
import { stack } from "./_helpers.ts";
import { createStatusFixture, XSS_NAME } from "./status_page_fixture.ts";
import { openPage } from "./_chromium.ts";
import { JOBS } from "../shared/jobs/mod.ts";

Deno.test("status page in headless Chromium shows the fixture's states, bars and alert, and a <script> name as text", async () => {
  const fx = await createStatusFixture();
  const { browser, page, dialogs } = await openPage();
  try {
    const s = stack();
    const res = await page.goto(
      `${s.functionsUrl}/status-page?token=${encodeURIComponent(s.secretKey)}&q=${fx.prefix}`,
    );
    assert.equal(res?.status(), 200);
    assert.match(await page.title(), /WhatsApp status/);

    // overall banner and services
    const overall = await page.locator("#overall").getAttribute("data-overall");
    assert.ok(["operational", "degraded", "outage", "unknown"].includes(overall ?? ""), `overall ${overall}`);
    assert.ok(await page.locator("#overall").isVisible());
    const evolution = page.locator('[data-service="evolution_api"]');
    assert.equal((await evolution.locator(".badge").innerText()).trim(), "healthy");
    assert.match(await evolution.innerText(), new RegExp(fx.evolutionVersion.replaceAll(".", "\\.")));
    assert.equal(
      (await page.locator('[data-service="database"] .badge').innerText()).trim(),
      "healthy",
    );

    // tenant states, worst first
    const rows = page.locator("tr.tenant");
    assert.equal(await rows.count(), 4);
    const slugs = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-slug")));
    assert.deepEqual(slugs.slice(0, 2), [fx.slugs.down, fx.slugs.deg]);
    for (
      const [slug, state] of [[fx.slugs.ok, "healthy"], [fx.slugs.deg, "degraded"], [fx.slugs.down, "unhealthy"]]
    ) {
      const badge = page.locator(`tr.tenant[data-slug="${slug}"] td:nth-child(2) .badge`);
      assert.ok(await badge.isVisible(), `${slug} badge visible`);
      assert.equal((await badge.innerText()).trim(), state);
    }

    // bar segments from the DOM, and their laid-out widths
    const segments = (slug: string, window: string) =>
      page.locator(`tr.tenant[data-slug="${slug}"] svg.bar[data-window="${window}"] rect`).evaluateAll((rs) =>
        rs.map((r) => [r.getAttribute("data-state"), Number(r.getAttribute("x")), Number(r.getAttribute("width"))])
      );
    assert.deepEqual(await segments(fx.slugs.ok, "24h"), [["healthy", 0, 96]]);
    assert.deepEqual(await segments(fx.slugs.ok, "7d"), [["healthy", 0, 168]]);
    assert.deepEqual(await segments(fx.slugs.deg, "24h"), [["healthy", 0, 71], ["degraded", 71, 25]]);
    assert.deepEqual(await segments(fx.slugs.down, "24h"), [["healthy", 0, 47], ["unhealthy", 47, 49]]);
    assert.deepEqual(await segments(fx.slugs.down, "7d"), [["unknown", 0, 95], ["healthy", 95, 60], [
      "unhealthy",
      155,
      13,
    ]]);
    const svgBox = await page.locator(`tr.tenant[data-slug="${fx.slugs.deg}"] svg.bar[data-window="24h"]`)
      .boundingBox();
    const degradedBox = await page.locator(
      `tr.tenant[data-slug="${fx.slugs.deg}"] svg.bar[data-window="24h"] rect[data-state="degraded"]`,
    ).boundingBox();
    assert.ok(svgBox && degradedBox);
    assert.ok(Math.abs(degradedBox.width / svgBox.width - 25 / 96) < 0.02, "the degraded segment is 25/96 wide");
    assert.ok(Math.abs(degradedBox.x + degradedBox.width - (svgBox.x + svgBox.width)) < 1.5, "and ends the bar");
    const fill = await page.locator(
      `tr.tenant[data-slug="${fx.slugs.down}"] svg.bar[data-window="24h"] rect[data-state="unhealthy"]`,
    ).evaluate((r) => getComputedStyle(r).fill);
    assert.equal(fill, "rgb(220, 38, 38)", "unhealthy segments are red");
    // 17 h 53 min of 24 h healthy = 74.51%, minus the moments between the fixture and the page (on a loaded
    // machine tens of seconds: 0.01% is 8.6 s); two decimals shown
    const pct = await page.locator(`tr.tenant[data-slug="${fx.slugs.deg}"] .pct[data-window="24h"]`).innerText();
    assert.match(pct.trim(), /^\d+\.\d\d%$/);
    const shown = Number(pct.trim().slice(0, -1));
    assert.ok(shown <= 74.52 && shown >= 74.3, `24 h availability ${shown}% is 17 h 53 min of 24 h`);

    // the firing alert
    assert.ok(await page.locator(`#alerts tr[data-fingerprint="instance_missing:${fx.slugs.down}"]`).isVisible());

    // the jobs
    const jobs = await page.locator("#jobs tr.job").evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-job")));
    for (const job of JOBS.map((j) => j.name)) {
      assert.ok(jobs.includes(job), `job ${job} listed`);
    }

    // the injected name is text, nothing ran
    const name = await page.locator(`tr.tenant[data-slug="${fx.slugs.xss}"] .tenant-name`).textContent();
    assert.equal(name?.trim(), XSS_NAME);
    assert.equal(await page.evaluate(() => (globalThis as { __xss?: number }).__xss), undefined);
    assert.equal(await page.locator("script").count(), 0);
    assert.equal(await page.locator(`tr.tenant[data-slug="${fx.slugs.xss}"] img`).count(), 0);
    assert.deepEqual(dialogs, []);

    await Deno.mkdir(new URL("../.local/", import.meta.url), { recursive: true });
    const shot = new URL("../.local/status_page.png", import.meta.url);
    await page.screenshot({ path: shot.pathname, fullPage: true });
    assert.ok((await Deno.stat(shot)).size > 10_000, "a screenshot was saved");
  } finally {
    await browser.close();
    await fx.cleanup();
  }
});
