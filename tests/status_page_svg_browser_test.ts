// The SVG board (?format=svg) as a browser shows it when it is opened directly, as on *.supabase.co: Debian's
// Chromium, headless, driven by playwright-core, against the test stack's status-page function. The document parses
// (no XML error page), shows the overall status, the services, the tenants' states, the availability bars with the
// same segments and laid-out widths as the HTML page, the alert and the jobs; the <script> tenant name is text and
// nothing runs. Then, with the read-only token (the app in process, served to the browser through playwright's
// routing), its links open the other formats. A screenshot goes to .local/status_page_svg.png.
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { stack, testDeps } from "./_helpers.ts";
import { createStatusFixture, XSS_NAME } from "./status_page_fixture.ts";
import { openPage } from "./_chromium.ts";
import { createStatusPageApp } from "../shared/status_page/app.ts";
import { JOBS } from "../shared/jobs/mod.ts";

/** `[state, x, width]` of each segment of a bar, read from the DOM (`row` is the CSS selector of the tenant row). */
function segments(page: Page, row: string, window: string) {
  return page.locator(`${row} svg.bar[data-window="${window}"] rect[data-state]`).evaluateAll((rs) =>
    rs.map((r) => [r.getAttribute("data-state"), Number(r.getAttribute("x")), Number(r.getAttribute("width"))])
  );
}

Deno.test("SVG status board in headless Chromium: states, bars as the HTML page draws them, alert, a <script> name as text", async () => {
  const fx = await createStatusFixture();
  const { browser, page, dialogs } = await openPage();
  try {
    const s = stack();
    const query = `token=${encodeURIComponent(s.secretKey)}&q=${fx.prefix}`;
    const res = await page.goto(`${s.functionsUrl}/status-page?format=svg&${query}`);
    assert.equal(res?.status(), 200);
    assert.equal(res?.headers()["content-type"], "image/svg+xml; charset=utf-8");
    // an SVG document, parsed without error (a broken one shows Chromium's XML error page instead)
    assert.deepEqual(
      await page.evaluate(() => [document.contentType, document.documentElement.localName]),
      ["image/svg+xml", "svg"],
    );
    assert.equal(await page.locator("parsererror").count(), 0);
    assert.match(await page.title(), /WhatsApp status$/);

    // overall banner and services
    const overall = await page.locator("#overall").getAttribute("data-overall");
    assert.ok(["operational", "degraded", "outage", "unknown"].includes(overall ?? ""), `overall ${overall}`);
    assert.ok(await page.locator("#overall").isVisible());
    assert.equal(
      await page.locator("#overall .headline").textContent(),
      {
        operational: "All systems operational",
        degraded: "Degraded",
        outage: "Outage",
        unknown: "Status unknown",
      }[overall!],
    );
    const evolution = page.locator('[data-service="evolution_api"]');
    assert.equal(await evolution.locator(".badge text").textContent(), "healthy");
    assert.ok(await evolution.locator(".badge").isVisible());
    assert.match(await evolution.textContent() ?? "", new RegExp(fx.evolutionVersion.replaceAll(".", "\\.")));
    assert.equal(await page.locator('[data-service="database"] .badge text').textContent(), "healthy");

    // tenant states, worst first
    const rows = page.locator("g.tenant");
    assert.equal(await rows.count(), 4);
    const slugs = await rows.evaluateAll((gs) => gs.map((g) => g.getAttribute("data-slug")));
    assert.deepEqual(slugs.slice(0, 2), [fx.slugs.down, fx.slugs.deg]);
    for (
      const [slug, state] of [[fx.slugs.ok, "healthy"], [fx.slugs.deg, "degraded"], [fx.slugs.down, "unhealthy"]]
    ) {
      const badge = page.locator(`g.tenant[data-slug="${slug}"] .badge`);
      assert.ok(await badge.isVisible(), `${slug} badge visible`);
      assert.equal(await badge.locator("text").textContent(), state);
      const box = await badge.locator("text").boundingBox();
      const pill = await badge.locator("rect").boundingBox();
      assert.ok(box && pill && box.x >= pill.x && box.x + box.width <= pill.x + pill.width, `${state} fits its badge`);
    }

    // bar segments from the DOM: the values the HTML page draws for the same tenants
    const row = (slug: string) => `g.tenant[data-slug="${slug}"]`;
    assert.deepEqual(await segments(page, row(fx.slugs.ok), "24h"), [["healthy", 0, 96]]);
    assert.deepEqual(await segments(page, row(fx.slugs.ok), "7d"), [["healthy", 0, 168]]);
    assert.deepEqual(await segments(page, row(fx.slugs.deg), "24h"), [["healthy", 0, 71], ["degraded", 71, 25]]);
    assert.deepEqual(await segments(page, row(fx.slugs.down), "24h"), [["healthy", 0, 47], ["unhealthy", 47, 49]]);
    assert.deepEqual(await segments(page, row(fx.slugs.down), "7d"), [["unknown", 0, 95], ["healthy", 95, 60], [
      "unhealthy",
      155,
      13,
    ]]);
    const html = await browser.newPage();
    await html.goto(`${s.functionsUrl}/status-page?${query}`);
    for (const slug of Object.values(fx.slugs)) {
      for (const window of ["24h", "7d"]) {
        assert.deepEqual(
          await segments(page, row(slug), window),
          await segments(html, `tr.tenant[data-slug="${slug}"]`, window),
          `${slug} ${window}: the same segments as the HTML page`,
        );
      }
    }
    await html.close();
    // and their laid-out widths
    const svgBox = await page.locator(`${row(fx.slugs.deg)} svg.bar[data-window="24h"]`).boundingBox();
    const degradedBox = await page.locator(
      `${row(fx.slugs.deg)} svg.bar[data-window="24h"] rect[data-state="degraded"]`,
    )
      .boundingBox();
    assert.ok(svgBox && degradedBox);
    assert.ok(svgBox.width > 150, `the bar is drawn wide (${svgBox.width} px)`);
    assert.ok(Math.abs(degradedBox.width / svgBox.width - 25 / 96) < 0.02, "the degraded segment is 25/96 wide");
    assert.ok(Math.abs(degradedBox.x + degradedBox.width - (svgBox.x + svgBox.width)) < 1.5, "and ends the bar");
    const week = await page.locator(`${row(fx.slugs.down)} svg.bar[data-window="7d"]`).boundingBox();
    const weekDown = await page.locator(`${row(fx.slugs.down)} svg.bar[data-window="7d"] rect[data-state="unhealthy"]`)
      .boundingBox();
    assert.ok(week && weekDown && Math.abs(weekDown.width / week.width - 13 / 168) < 0.02, "13/168 of the week");
    const fill = await page.locator(`${row(fx.slugs.down)} svg.bar[data-window="24h"] rect[data-state="unhealthy"]`)
      .evaluate((r) => getComputedStyle(r).fill);
    assert.equal(fill, "rgb(220, 38, 38)", "unhealthy segments are red");
    // 17 h 53 min of 24 h healthy (minus the moments between the fixture and the page)
    const pct = await page.locator(`${row(fx.slugs.deg)} .pct[data-window="24h"]`).textContent();
    assert.match(pct?.trim() ?? "", /^74\.5\d%$/);

    // the firing alert, the jobs
    const alert = page.locator(`#alerts g.alert[data-fingerprint="instance_missing:${fx.slugs.down}"]`);
    assert.ok(await alert.isVisible());
    assert.match(await alert.textContent() ?? "", /Instance not found in Evolution API/);
    const jobs = await page.locator("#jobs g.job").evaluateAll((gs) => gs.map((g) => g.getAttribute("data-job")));
    for (const job of JOBS.map((j) => j.name)) {
      assert.ok(jobs.includes(job), `job ${job} listed`);
    }

    // the injected name is text (cut to its column, whole in the tooltip), nothing ran
    const name = page.locator(`${row(fx.slugs.xss)} text.tenant-name`);
    assert.ok(await name.isVisible());
    const shown = await name.textContent() ?? "";
    assert.ok(shown.startsWith("<script>window.__xss = 1</script>"), shown);
    assert.ok(shown.endsWith("…"));
    assert.equal(
      await page.locator(`${row(fx.slugs.xss)} g.cell:has(> text.tenant-name) > title`).textContent(),
      XSS_NAME,
    );
    const nameBox = await name.boundingBox();
    assert.ok(nameBox && nameBox.width <= 236 - 8, `the name stays in its column (${nameBox?.width} px)`);
    assert.equal(await page.evaluate(() => (globalThis as { __xss?: number }).__xss), undefined);
    for (const tag of ["script", "foreignObject", "img", "image", "iframe"]) {
      assert.equal(await page.locator(tag).count(), 0, `no <${tag}>`);
    }
    assert.deepEqual(dialogs, []);

    // opened with the secret key, the links carry no token at all
    for (const href of await page.locator("a").evaluateAll((as) => as.map((a) => a.getAttribute("href") ?? ""))) {
      assert.ok(!new URLSearchParams(href.slice(1)).has("token"), href);
    }

    // the whole board, as high as its content
    const height = Number(await page.locator(":root").getAttribute("height"));
    assert.ok(height > 900, `height ${height}`);
    await page.setViewportSize({ width: 1400, height });
    await Deno.mkdir(new URL("../.local/", import.meta.url), { recursive: true });
    const shot = new URL("../.local/status_page_svg.png", import.meta.url);
    await page.screenshot({ path: shot.pathname });
    assert.ok((await Deno.stat(shot)).size > 10_000, "a screenshot was saved");
  } finally {
    await browser.close();
    await fx.cleanup();
  }
});

Deno.test("SVG status board in headless Chromium: with the read-only token, its links open the HTML page and the JSON", async () => {
  const token = `ro_${crypto.randomUUID()}`;
  const app = createStatusPageApp(testDeps({ env: { STATUS_PAGE_TOKEN: token } }));
  const { browser, page } = await openPage();
  try {
    const seen: string[] = [];
    // the browser talks to the app in this process: no port, no network
    await page.route("http://status.test/**", async (route) => {
      const url = new URL(route.request().url());
      seen.push(url.search);
      const res = await app.request(`${url.pathname}${url.search}`, { headers: route.request().headers() });
      await route.fulfill({
        status: res.status,
        headers: Object.fromEntries(res.headers),
        body: await res.text(),
      });
    });
    const start = `http://status.test/status-page?format=svg&token=${token}&q=sp-&limit=3`;
    assert.equal((await page.goto(start))?.status(), 200);
    assert.equal(await page.locator("parsererror").count(), 0);

    await page.locator('a[data-format="json"]').click();
    await page.waitForURL(/format=json/);
    const json = JSON.parse(await page.locator("body").textContent() ?? "");
    assert.equal(json.version, 1);
    assert.equal(json.search, "sp-");
    assert.equal(json.limit, 3);

    await page.goto(start);
    await page.locator('a[data-format="html"]').click();
    await page.waitForURL(/format=html/);
    assert.match(await page.title(), /WhatsApp status/);
    assert.equal(await page.locator("input[name=token]").getAttribute("value"), token, "the HTML page keeps it");

    for (const search of seen) {
      const p = new URLSearchParams(search);
      assert.equal(p.get("token"), token, `every request carried the read-only token: ${search}`);
      assert.equal(p.get("q"), "sp-");
    }
    assert.ok(seen.length >= 4, `${seen.length} requests`);
  } finally {
    await browser.close();
  }
});
