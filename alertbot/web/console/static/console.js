// alertbot console: refresh a list in place (the filters stay in the address, the page keeps its
// scroll position and focus), and nothing else. No framework, no third-party code.
"use strict";
(function () {
  const list = document.querySelector("[data-refresh]");
  if (!list) return;
  const every = Math.max(1000, parseInt(list.dataset.refresh, 10) || 10000);
  async function refresh() {
    const url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.redirected || !response.ok) return; // signed out or failing: keep what is shown
      const html = await response.text();
      if (html !== list.dataset.last) {
        list.dataset.last = html;
        list.innerHTML = html;
      }
    } catch (error) {
      // Offline for a moment: the next refresh tries again.
    }
  }
  window.setInterval(refresh, every);
})();
