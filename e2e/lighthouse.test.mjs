// Lighthouse (pinned in package.json) on the home page, a product page and a filled cart, with
// its default mobile preset (a mid-range phone on a slow 4G link, simulated), against the same
// Debian Chromium as the journeys. Prints every score and fails below the shop's floor.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

import { BASE_URL, CHROME_FLAGS, CHROME_PATH, api, tempDir } from "./support.mjs";

const run = promisify(execFile);
const LIGHTHOUSE = path.resolve(import.meta.dirname, "node_modules/.bin/lighthouse");

/** The floor for each category, as a Lighthouse score out of 100. */
const FLOOR = { performance: 95, accessibility: 100, "best-practices": 95, seo: 95 };

/** Where the JSON reports are kept for a look after the run. */
const REPORTS = path.resolve(import.meta.dirname, "../target/e2e/lighthouse");

/**
 * Runs Lighthouse on one URL in a fresh Chromium profile; returns the parsed report. A run that
 * crashes comes back as a report with a `runtimeError`, like the ones Lighthouse itself writes.
 */
async function lighthouse(name, pathname, headers = {}) {
  const profile = tempDir("doorbuster-lighthouse-");
  mkdirSync(REPORTS, { recursive: true });
  const report = path.join(REPORTS, `${name}.json`);
  rmSync(report, { force: true });
  const flags = [...CHROME_FLAGS, `--user-data-dir=${profile}`].join(" ");
  try {
    await run(
      LIGHTHOUSE,
      [
        `${BASE_URL}${pathname}`,
        "--quiet",
        "--output=json",
        `--output-path=${report}`,
        `--only-categories=${Object.keys(FLOOR).join(",")}`,
        `--chrome-flags=${flags}`,
        `--extra-headers=${JSON.stringify(headers)}`,
        "--max-wait-for-load=30000",
      ],
      { env: { ...process.env, CHROME_PATH }, timeout: 180_000, maxBuffer: 16 << 20 },
    );
  } catch (error) {
    if (!existsSync(report)) {
      return { categories: {}, runtimeError: { code: "CRASHED", message: `${error.message}\n${error.stderr ?? ""}` } };
    }
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
  return JSON.parse(readFileSync(report, "utf8"));
}

/** Scores out of 100, and the audits that cost points, for the failure message. */
function summarise(report) {
  const scores = {};
  const lost = [];
  for (const [id, category] of Object.entries(report.categories)) {
    scores[id] = Math.round(category.score * 100);
    for (const ref of category.auditRefs) {
      const audit = report.audits[ref.id];
      if (ref.weight > 0 && audit.score !== null && audit.score < 1) {
        lost.push(`${id}: ${ref.id} (${audit.score}) ${audit.displayValue ?? ""}`.trim());
      }
    }
  }
  return { scores, lost };
}

/**
 * Lighthouse's simulated performance score moves with the machine's load (it replays the page's
 * real main-thread work), so a page below a floor gets two more runs before it fails; the other
 * categories come out the same every run. Every run's scores are printed.
 */
const RUNS = 3;

async function check(t, name, pathname, headers) {
  const failures = [];
  for (let run = 1; run <= RUNS; run += 1) {
    const report = await lighthouse(name, pathname, headers);
    const { scores, lost } = summarise(report);
    const line = Object.entries(scores).map(([id, score]) => `${id} ${score}`).join(", ");
    t.diagnostic(`lighthouse ${name} (${pathname}) run ${run}: ${report.runtimeError ? `error ${report.runtimeError.code}` : line}`);
    for (const audit of lost) t.diagnostic(`  below 1: ${audit}`);
    const below = report.runtimeError
      ? [`runtime error ${report.runtimeError.code}: ${report.runtimeError.message}`]
      : Object.entries(FLOOR)
        .filter(([id, floor]) => !(scores[id] >= floor))
        .map(([id, floor]) => `${id} scored ${scores[id]}, below ${floor}`);
    if (below.length === 0) return;
    failures.push(`run ${run}: ${below.join("; ")}; audits that lost points:\n  ${lost.join("\n  ")}`);
  }
  assert.fail(`${name} (${pathname}) stayed below the floor in ${RUNS} runs:\n${failures.join("\n")}`);
}

test("lighthouse: home page", async (t) => {
  await check(t, "home", "/");
});

test("lighthouse: product page", async (t) => {
  const listing = await api("/api/products?per_page=1");
  await check(t, "product", listing.items[0].url);
});

test("lighthouse: cart with two products", async (t) => {
  const listing = await api("/api/products?category=audio&per_page=10");
  const [a, b] = listing.items.filter((p) => p.stock > 5);
  // The cart cookie's format: product id × quantity, joined by dashes.
  await check(t, "cart", "/cart", { Cookie: `cart=${a.id}x1-${b.id}x2` });
});
