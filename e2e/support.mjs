// Shared helpers for the browser tests: where the shop is, how Chromium is started, and a page
// wrapper that fails the test on anything a shopper should never see (a request leaving the site,
// a console error, a Content-Security-Policy violation, an uncaught script error).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { chromium } from "playwright-core";

/** The shop under test, started by scripts/e2e. */
export const BASE_URL = (process.env.DOORBUSTER_E2E_URL ?? "").replace(/\/$/, "");
if (!BASE_URL) {
  throw new Error("DOORBUSTER_E2E_URL is not set: run the browser tests through scripts/e2e");
}

/** Debian's Chromium; `npx playwright install` cannot download a browser here. */
export const CHROME_PATH = process.env.CHROME_PATH ?? "/usr/bin/chromium";

/** Where screenshots go (scripts/e2e --update-screenshots points this at docs/screenshots). */
export const SCREENSHOTS_DIR = process.env.DOORBUSTER_SCREENSHOTS_DIR
  ?? path.resolve(import.meta.dirname, "../target/e2e/screenshots");

/**
 * Flags for a quiet, offline headless Chromium. Without the background-networking flags Chromium
 * tries to reach Google services at start-up; here those connections are refused and it stalls.
 */
export const CHROME_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
  "--disable-dev-shm-usage",
];

/** Viewports the shop is designed for: a wide desktop and a phone. */
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** The one seeded product with no stock. */
export const SOLD_OUT_SLUG = "kestrel-go-gilded-edition";

/** Starts Chromium with a fresh profile in a temporary folder; `close()` removes it. */
export async function launchBrowser() {
  const profile = mkdtempSync(path.join(tmpdir(), "doorbuster-chromium-"));
  // A persistent context is the only way to give playwright our own --user-data-dir; the test
  // contexts are then made fresh from the browser it belongs to.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROME_PATH,
    headless: true,
    args: CHROME_FLAGS.filter((flag) => flag !== "--headless"),
    timeout: 60_000,
  });
  const browser = context.browser();
  return {
    /** A fresh, isolated browser context (own cookies): one shopper. */
    async shopper({ javaScript = true, viewport = DESKTOP, isMobile = false } = {}) {
      const shopperContext = await browser.newContext({
        baseURL: BASE_URL,
        javaScriptEnabled: javaScript,
        viewport,
        deviceScaleFactor: isMobile ? 2 : 1,
        isMobile,
        hasTouch: isMobile,
        reducedMotion: "reduce",
      });
      shopperContext.setDefaultTimeout(15_000);
      return guard(shopperContext);
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Watches a context for anything that breaks the shop's promises: every request must stay on the
 * shop's own origin (others are blocked and recorded), and no page may log an error, violate the
 * CSP or throw. `assertClean()` fails the test with the list.
 */
async function guard(context) {
  const problems = [];
  const origin = new URL(BASE_URL).origin;
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`) || url.startsWith("data:")) {
      return route.continue();
    }
    problems.push(`request left the site: ${url}`);
    return route.abort("blockedbyclient");
  });
  const watch = (page) => {
    page.on("console", (message) => {
      // Chromium logs every 4xx/5xx answer as "Failed to load resource"; pages answered 4xx on
      // purpose (a validation error, a 404) are checked by the tests, and failed sub-resources
      // are caught by the response watch below.
      if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
        problems.push(`console error on ${page.url()}: ${message.text()}`);
      }
    });
    page.on("response", (response) => {
      if (response.status() >= 400 && response.request().resourceType() !== "document") {
        problems.push(`${response.status()} for ${response.url()} on ${page.url()}`);
      }
    });
    page.on("pageerror", (error) => problems.push(`script error on ${page.url()}: ${error.message}`));
  };
  context.on("page", watch);
  return {
    context,
    problems,
    async newPage() {
      const page = await context.newPage();
      // CSP violations reach the console as errors too; this also catches report-only cases.
      await page.addInitScript(() => {
        document.addEventListener("securitypolicyviolation", (event) => {
          console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
        });
      });
      return page;
    },
    async cartCount(page) {
      return Number(await page.locator(".cart-count").first().textContent());
    },
    assertClean() {
      assert.deepEqual(problems, [], "the pages must stay on the site, error-free and inside the CSP");
    },
    async close() {
      await context.close();
    },
  };
}

/**
 * Saves what the shopper sees first (the viewport, from the top of the page) as `<name>.png` in
 * the screenshots folder, once every image on screen has loaded.
 */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS_DIR, { recursive: true });
  const file = path.join(SCREENSHOTS_DIR, `${name}.png`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForFunction(() => [...document.images]
    .filter((img) => img.getBoundingClientRect().top < window.innerHeight)
    .every((img) => img.complete));
  await page.screenshot({ path: file, animations: "disabled", caret: "hide" });
  return file;
}

/** The shop's JSON API, for arranging and checking state the browser cannot see. */
export async function api(pathname, init) {
  const response = await fetch(`${BASE_URL}${pathname}`, init);
  assert.ok(response.ok, `${pathname} answered ${response.status}`);
  return response.json();
}

/** Fresh temporary folder for one test's files. */
export function tempDir(prefix) {
  return mkdtempSync(path.join(tmpdir(), prefix));
}
