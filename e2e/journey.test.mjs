// Shopper journeys in a real headless Chromium: browse, add to cart, change the quantity, check
// out through a validation error to a confirmation, with and without JavaScript, on a desktop and
// on a phone. Every page is also checked for requests leaving the site, console errors, CSP
// violations and sideways scrolling; the journeys take the README's screenshots on the way.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  BASE_URL,
  DESKTOP,
  PHONE,
  SOLD_OUT_SLUG,
  api,
  launchBrowser,
  screenshot,
} from "./support.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** An in-stock product of `category` that is not a doorbuster, so journeys do not drain deals. */
async function pickProduct(category, skip = []) {
  const listing = await api(`/api/products?category=${category}&per_page=50`);
  const product = listing.items.find(
    (p) => p.stock >= 20 && !p.doorbuster && !skip.includes(p.slug),
  );
  assert.ok(product, `no roomy product in ${category}`);
  return product;
}

/** `$1,234.56` → 123456 */
function cents(text) {
  const match = /\$([\d,]+)\.(\d\d)/.exec(text);
  assert.ok(match, `no price in ${JSON.stringify(text)}`);
  return Number(match[1].replaceAll(",", "")) * 100 + Number(match[2]);
}

/** The page never scrolls sideways: everything fits the viewport's width. */
async function assertFitsWidth(page) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  assert.ok(scroll <= width, `${page.url()} is ${scroll}px wide in a ${width}px viewport`);
}

/**
 * The whole journey: home → department → product → add to cart → change quantity → keep
 * browsing (the cart follows) → checkout with a validation error → valid data → confirmation.
 * Navigation is by clicking, as a shopper would; `shots` names the screenshots to take.
 */
async function journey({ javaScript, viewport, isMobile = false, shots = null }) {
  const shopper = await browser.shopper({ javaScript, viewport, isMobile });
  const page = await shopper.newPage();
  const first = await pickProduct("consoles");
  const second = await pickProduct("books");

  // Home: the hero, the doorbusters, an empty cart.
  const home = await page.goto("/");
  assert.equal(home.status(), 200);
  await assertFitsWidth(page);
  assert.match(await page.locator("h1").textContent(), /doorbuster/i);
  assert.ok((await page.locator("#deals .card").count()) >= 6, "the doorbusters are listed");
  assert.equal(await shopper.cartCount(page), 0);
  const countdown = page.locator("[data-countdown]");
  if (javaScript) {
    assert.equal(await countdown.locator(".countdown-unit").count(), 4, "the script runs the clock");
    assert.match(await countdown.textContent(), /end .*midnight\s*\d\d\s*days\s*\d\d\s*hours/);
  } else {
    assert.match(await countdown.textContent(), /end at midnight/, "without script, a sentence");
  }
  if (shots) await screenshot(page, `${shots}-home`);

  // Department, by its link in the navigation (or the departments list on the home page).
  await page.locator('a[href="/c/consoles"]').first().click();
  await page.waitForURL("**/c/consoles");
  assert.equal((await page.locator("h1").textContent()).trim(), "Consoles");
  await assertFitsWidth(page);

  // Product page: name, price with the saving, stock state.
  await page.locator(`a.card-link[href="/p/${first.slug}"]`).click();
  await page.waitForURL(`**/p/${first.slug}`);
  assert.equal((await page.locator("h1").textContent()).trim(), first.name);
  const price = cents(await page.locator(".price-block .price").textContent());
  assert.equal(price, first.price_cents);
  if (first.list_price_cents > first.price_cents) {
    assert.match(await page.locator(".saving").textContent(), /You save \$/);
  }
  await assertFitsWidth(page);
  if (shots) await screenshot(page, `${shots}-product`);

  // Add to cart: the cart page confirms it and the counter goes up.
  await page.getByRole("button", { name: "Add to cart", exact: true }).click();
  await page.waitForURL("**/cart**");
  assert.ok((await page.locator(".notice").textContent()).includes(`Added ${first.name} to your cart`));
  assert.equal(await shopper.cartCount(page), 1);

  // Change the quantity to 3.
  const line = page.locator(".cart-line", { hasText: first.name });
  await line.getByLabel("Quantity").fill("3");
  await line.getByRole("button", { name: "Update" }).click();
  await page.waitForFunction(
    () => document.querySelector(".cart-count")?.textContent.trim() === "3",
  );
  assert.equal(cents(await line.locator(".cart-line-total").textContent()), 3 * price);

  // The cart follows the shopper around the shop.
  await page.locator(".brand").click();
  await page.waitForURL(`${BASE_URL}/`);
  assert.equal(await shopper.cartCount(page), 3);
  await page.goto(`/p/${second.slug}`);
  assert.equal(await shopper.cartCount(page), 3);
  await page.getByRole("button", { name: "Add to cart", exact: true }).click();
  await page.waitForURL("**/cart**");
  assert.equal(await shopper.cartCount(page), 4);
  assert.equal(await page.locator(".cart-line").count(), 2);
  const subtotal = cents(await page.locator(".cart-summary .price").textContent());
  assert.equal(subtotal, 3 * first.price_cents + second.price_cents);
  await assertFitsWidth(page);
  if (shots) await screenshot(page, `${shots}-cart`);

  // Checkout with a mistake: the form comes back with the errors next to their fields.
  await page.getByRole("link", { name: "Check out" }).click();
  await page.waitForURL("**/checkout");
  await assertFitsWidth(page);
  await page.getByLabel("Full name").fill("Ada Lovelace");
  await page.getByLabel("Email").fill("ada-at-example");
  const rejected = page.waitForResponse((r) => r.url().endsWith("/checkout") && r.request().method() === "POST");
  await page.getByRole("button", { name: /Place order/ }).click();
  assert.equal((await rejected).status(), 422);
  await page.waitForSelector(".field-error");
  const email = page.getByLabel("Email");
  assert.equal(await email.getAttribute("aria-invalid"), "true");
  assert.ok((await page.locator(".field-error").count()) >= 2, "each bad field says what is wrong");
  assert.equal(await page.getByLabel("Full name").inputValue(), "Ada Lovelace", "typed data is kept");

  // Valid data: the order is placed and confirmed with its number; the cart is emptied.
  await email.fill("ada@example.com");
  await page.getByLabel("Street address").fill("12 Analytical Row");
  await page.getByLabel("City").fill("London");
  await page.getByLabel("Postal code").fill("N1 9GU");
  await page.getByLabel("Country").fill("United Kingdom");
  await page.getByRole("button", { name: /Place order/ }).click();
  await page.waitForURL("**/orders/**");
  assert.match(await page.locator("h1").textContent(), /Thank you, Ada Lovelace/);
  const number = (await page.locator(".order-number").textContent()).trim();
  assert.match(number, /^[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}$/);
  assert.equal(await shopper.cartCount(page), 0);
  await assertFitsWidth(page);
  if (shots) await screenshot(page, `${shots}-confirmation`);

  // The confirmation tells the truth: the order exists with what was in the cart.
  const id = await page.locator(".order-number").getAttribute("data-order-id");
  const order = await api(`/api/orders/${id}`);
  assert.equal(order.total_cents, subtotal);
  const quantities = Object.fromEntries(order.lines.map((l) => [l.product_id, l.quantity]));
  assert.deepEqual(quantities, { [first.id]: 3, [second.id]: 1 });

  shopper.assertClean();
  await shopper.close();
}

describe("shopper journey", () => {
  test("with JavaScript on a 1280 px desktop, home to confirmation", async () => {
    await journey({ javaScript: true, viewport: DESKTOP, shots: "desktop" });
  });

  test("with JavaScript on a 390 px phone, home to confirmation", async () => {
    await journey({ javaScript: true, viewport: PHONE, isMobile: true, shots: "phone" });
  });

  test("with JavaScript disabled, home to confirmation", async () => {
    await journey({ javaScript: false, viewport: DESKTOP });
  });
});

describe("stock", () => {
  test("a sold-out product shows Sold out and cannot be added to the cart", async () => {
    const shopper = await browser.shopper();
    const page = await shopper.newPage();
    const product = await api(`/api/products/${SOLD_OUT_SLUG}`);
    assert.equal(product.stock, 0, "the seeded catalog has this one product sold out");

    await page.goto(`/p/${SOLD_OUT_SLUG}`);
    assert.match(await page.locator(".stock").textContent(), /Sold out/);
    assert.equal(await page.getByRole("button", { name: "Add to cart", exact: true }).count(), 0);

    // Its department card carries the badge too.
    await page.goto(`/c/${product.category}`);
    const card = page.locator(".card", { has: page.locator(`a[href="/p/${SOLD_OUT_SLUG}"]`) });
    assert.equal((await card.locator(".badge-soldout").textContent()).trim(), "Sold out");

    // A hand-made form post is refused and the cart stays empty.
    const refused = await page.request.post("/cart/add", {
      form: { product_id: String(product.id), quantity: "1" },
      maxRedirects: 0,
    });
    assert.equal(refused.status(), 409);
    await page.goto("/cart");
    assert.equal(await shopper.cartCount(page), 0);
    assert.match(await page.locator("main").textContent(), /Your cart is empty/);
    shopper.assertClean();
    await shopper.close();
  });

  test("low stock shows an Only N left badge", async () => {
    const shopper = await browser.shopper();
    const page = await shopper.newPage();
    const listing = await api("/api/products?per_page=100");
    const low = listing.items.find((p) => p.stock > 0 && p.stock <= 5);
    assert.ok(low, "the seeded catalog has a nearly sold-out product");
    await page.goto(`/p/${low.slug}`);
    assert.equal((await page.locator(".stock").textContent()).trim(), `Only ${low.stock} left`);
    shopper.assertClean();
    await shopper.close();
  });
});

describe("one-click Add on product cards", () => {
  test("with JavaScript: the shopper stays on the page, the counter and a message update", async () => {
    const shopper = await browser.shopper();
    const page = await shopper.newPage();
    const product = await pickProduct("games");
    await page.goto("/c/games");
    const card = page.locator(".card", { has: page.locator(`a[href="/p/${product.slug}"]`) });
    await card.getByRole("button", { name: `Add to cart: ${product.name}`, exact: true }).click();
    await page.locator(".toast").getByText(`Added ${product.name} to your cart.`).waitFor();
    assert.equal(await shopper.cartCount(page), 1);
    assert.ok(page.url().endsWith("/c/games"), "still on the department page");
    await card.getByRole("button", { name: `Add to cart: ${product.name}`, exact: true }).click();
    await page.waitForFunction(() => document.querySelector(".cart-count").textContent === "2");
    await page.locator(".toast").getByRole("link", { name: "View cart" }).click();
    await page.waitForURL("**/cart");
    assert.equal(await page.getByLabel("Quantity").inputValue(), "2");
    shopper.assertClean();
    await shopper.close();
  });

  test("without JavaScript: the same button is a plain form that opens the cart", async () => {
    const shopper = await browser.shopper({ javaScript: false });
    const page = await shopper.newPage();
    const deals = await api("/api/products?per_page=100");
    const deal = deals.items.find((p) => p.doorbuster && p.stock > 5);
    await page.goto("/");
    await page.getByRole("button", { name: `Add to cart: ${deal.name}`, exact: true }).click();
    await page.waitForURL("**/cart?added=*");
    assert.ok((await page.locator(".notice").textContent()).includes(`Added ${deal.name} to your cart`));
    assert.equal(await shopper.cartCount(page), 1);
    shopper.assertClean();
    await shopper.close();
  });
});

describe("cart", () => {
  test("survives navigation, a reload and a second tab", async () => {
    const shopper = await browser.shopper({ javaScript: false });
    const page = await shopper.newPage();
    const product = await pickProduct("audio");
    await page.goto(`/p/${product.slug}`);
    await page.getByLabel("Quantity").selectOption("2");
    await page.getByRole("button", { name: "Add to cart", exact: true }).click();
    await page.waitForURL("**/cart**");
    for (const path of ["/", "/c/audio", `/p/${product.slug}`, "/c/books?sort=price-asc"]) {
      await page.goto(path);
      assert.equal(await shopper.cartCount(page), 2, `cart counter on ${path}`);
    }
    await page.reload();
    assert.equal(await shopper.cartCount(page), 2);
    const tab = await shopper.newPage();
    await tab.goto("/cart");
    assert.equal(await tab.locator(".cart-line").count(), 1);
    assert.equal(await tab.getByLabel("Quantity").inputValue(), "2");
    shopper.assertClean();
    await shopper.close();
  });
});

describe("accessibility and layout", () => {
  test("keyboard only: skip link first, focus always visible, add to cart with Enter", async () => {
    const shopper = await browser.shopper();
    const page = await shopper.newPage();
    const product = await pickProduct("games");
    await page.goto(`/p/${product.slug}`);

    const focused = () => page.evaluate(() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return {
        text: (el.textContent || el.getAttribute("aria-label") || "").trim(),
        tag: el.tagName,
        outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
        ring: style.boxShadow !== "none",
      };
    });
    await page.keyboard.press("Tab");
    const skip = await focused();
    assert.equal(skip.text, "Skip to content");
    assert.ok(skip.outline || skip.ring, "the skip link shows its focus");
    assert.ok(await page.locator(".skip-link").isVisible());

    let reached = false;
    for (let i = 0; i < 60 && !reached; i += 1) {
      await page.keyboard.press("Tab");
      const now = await focused();
      assert.ok(now.outline || now.ring, `focus is visible on ${now.tag} "${now.text}"`);
      reached = now.tag === "BUTTON" && now.text === "Add to cart";
    }
    assert.ok(reached, "Add to cart is reachable with Tab");
    await page.keyboard.press("Enter");
    await page.waitForURL("**/cart**");
    assert.equal(await shopper.cartCount(page), 1);
    shopper.assertClean();
    await shopper.close();
  });

  test("every page fits a 360 px phone without sideways scrolling", async () => {
    const shopper = await browser.shopper({ viewport: { width: 360, height: 740 }, isMobile: true });
    const page = await shopper.newPage();
    const product = await pickProduct("laptops");
    await page.goto(`/p/${product.slug}`);
    await page.getByRole("button", { name: "Add to cart", exact: true }).click();
    await page.waitForURL("**/cart**");
    for (const path of ["/", "/c/laptops", `/p/${product.slug}`, `/p/${SOLD_OUT_SLUG}`, "/cart", "/checkout", "/no-such-page"]) {
      await page.goto(path);
      await assertFitsWidth(page);
    }
    shopper.assertClean();
    await shopper.close();
  });
});
