// keyledger console script. Hand-written, no build step, no dependencies; part of
// keyledger (MIT OR Apache-2.0). It only enhances: every screen works without it.
//
// Buttons with data-copy="ID" copy the value of the element ID to the clipboard; buttons
// with data-download="ID" and data-filename save it as a text file. Both are hidden until
// this script reveals them, so a browser without JavaScript does not offer them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.hidden = false;
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      try {
        await navigator.clipboard.writeText(source.value || source.textContent);
        button.textContent = "Copied";
      } catch (_) {
        source.select();
        button.textContent = "Press Ctrl+C to copy";
      }
    });
  }
  for (const button of document.querySelectorAll("button[data-download]")) {
    button.hidden = false;
    button.addEventListener("click", () => {
      const source = document.getElementById(button.dataset.download);
      if (!source) return;
      const blob = new Blob([(source.value || source.textContent) + "\n"], { type: "text/plain" });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = button.dataset.filename || "key.txt";
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    });
  }
});
