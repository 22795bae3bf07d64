// Progressive enhancement only: every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Sort menus apply on change; their submit button stays for keyboard and no-JS users.
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }

  // Countdown to the end of Cyber Monday (the Monday after US Thanksgiving), local time.
  const countdown = document.querySelector("[data-countdown]");
  if (countdown) {
    const now = new Date();
    const year = now.getFullYear();
    const novFirst = new Date(year, 10, 1);
    const thanksgiving = 1 + ((11 - novFirst.getDay()) % 7) + 21;
    const end = new Date(year, 10, thanksgiving + 5);
    const tick = () => {
      const left = end - new Date();
      if (left <= 0) {
        countdown.textContent = "The doorbusters are over: see you next Black Friday.";
        return;
      }
      const h = Math.floor(left / 3.6e6);
      const m = Math.floor((left % 3.6e6) / 6e4);
      const s = Math.floor((left % 6e4) / 1e3);
      countdown.textContent = `Deals end in ${h}h ${String(m).padStart(2, "0")}m ${String(s).padStart(2, "0")}s`;
    };
    tick();
    setInterval(tick, 1000);
  }
});
