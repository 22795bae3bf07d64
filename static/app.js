// Progressive enhancement only: every page works without this file (plain links and forms).
"use strict";

/** When the deals end: Cyber Monday midnight during Black Friday week, else tonight's midnight. */
function dealsDeadline(now) {
  const year = now.getFullYear();
  const novemberFirst = new Date(year, 10, 1);
  // US Thanksgiving: the fourth Thursday of November.
  const thanksgiving = 1 + ((11 - novemberFirst.getDay()) % 7) + 21;
  const weekStart = new Date(year, 10, thanksgiving - 6);
  const cyberMondayEnd = new Date(year, 10, thanksgiving + 5);
  if (now >= weekStart && now < cyberMondayEnd) {
    return { end: cyberMondayEnd, label: "Doorbusters end Cyber Monday at midnight" };
  }
  const midnight = new Date(year, now.getMonth(), now.getDate() + 1);
  return { end: midnight, label: "Today's doorbusters end at midnight" };
}

/** Replaces the countdown's plain sentence with a ticking days/hours/minutes/seconds clock. */
function startCountdown(box) {
  const { end, label } = dealsDeadline(new Date());
  const title = document.createElement("span");
  title.className = "countdown-label";
  title.textContent = label;
  const clock = document.createElement("span");
  clock.className = "countdown-clock";
  const digits = {};
  for (const [unit, name] of [["d", "days"], ["h", "hours"], ["m", "min"], ["s", "sec"]]) {
    const cell = document.createElement("span");
    cell.className = "countdown-unit";
    const value = document.createElement("b");
    const caption = document.createElement("small");
    caption.textContent = name;
    cell.append(value, caption);
    clock.append(cell);
    digits[unit] = value;
  }
  box.replaceChildren(title, clock);
  box.classList.add("countdown-ticking");
  const pad = (n) => String(n).padStart(2, "0");
  const tick = () => {
    const left = Math.max(0, end - Date.now());
    digits.d.textContent = pad(Math.floor(left / 864e5));
    digits.h.textContent = pad(Math.floor((left % 864e5) / 36e5));
    digits.m.textContent = pad(Math.floor((left % 36e5) / 6e4));
    digits.s.textContent = pad(Math.floor((left % 6e4) / 1e3));
  };
  tick();
  setInterval(tick, 1000);
}

/** A small status message at the bottom of the screen, announced to screen readers. */
function toast(message) {
  let box = document.querySelector(".toast");
  if (!box) {
    box = document.createElement("div");
    box.className = "toast";
    box.setAttribute("role", "status");
    const text = document.createElement("span");
    const link = document.createElement("a");
    link.href = "/cart";
    link.textContent = "View cart";
    box.append(text, link);
    document.body.append(box);
  }
  box.firstChild.textContent = message;
  box.hidden = false;
  clearTimeout(box.timer);
  box.timer = setTimeout(() => { box.hidden = true; }, 5000);
}

/** Sets the header's cart counter, with a little bump so the eye finds it. */
function setCartCount(count) {
  for (const badge of document.querySelectorAll(".cart-count")) {
    badge.textContent = String(count);
    badge.setAttribute("aria-label", `${count} items in cart`);
    badge.classList.toggle("cart-count-full", count > 0);
    badge.classList.remove("cart-bump");
    void badge.offsetWidth; // restart the animation
    badge.classList.add("cart-bump");
  }
}

/**
 * One-click "Add" on product cards: post the same form in the background and stay on the page.
 * The answer is the cart page the form would have shown; its counter and notice say what happened.
 * Anything unexpected falls back to the plain form post.
 */
function enhanceQuickAdd(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error(`answered ${response.status}`);
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const count = page.querySelector(".cart-count");
      if (!count) throw new Error("no cart counter in the answer");
      setCartCount(Number(count.textContent));
      const notice = page.querySelector(".notice");
      toast(notice ? notice.textContent.replace("✓", "").trim()
        : "You already have all we can sell you of this one.");
    } catch {
      form.submit();
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  // Sort menus apply on change; their submit button stays for keyboard and no-JS users.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
  const countdown = document.querySelector("[data-countdown]");
  if (countdown) startCountdown(countdown);
  for (const form of document.querySelectorAll("form[data-quick-add]")) enhanceQuickAdd(form);
});
