// Copy buttons: <button data-copy-target="ID" data-copy-status="ID"> copies the text of the
// first element and says so in the second. The clipboard API needs a secure context (https or
// localhost); elsewhere the text is selected and copied the old way, or left selected for Ctrl+C.
// A README's code blocks and tables scroll inside themselves when wide: each takes keyboard focus,
// so it can be scrolled without a mouse.
"use strict";

(() => {
  const selectText = (element) => {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  };

  const copyBySelection = (element) => {
    selectText(element);
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  };

  const announce = (button, message) => {
    const status = document.getElementById(button.dataset.copyStatus || "");
    if (!status) {
      return;
    }
    status.textContent = message;
    window.setTimeout(() => {
      status.textContent = "";
    }, 3000);
  };

  const copy = (button) => {
    const target = document.getElementById(button.dataset.copyTarget || "");
    if (!target) {
      return;
    }
    const fallback = () => {
      announce(button, copyBySelection(target) ? "Copied" : "Selected: press Ctrl+C to copy");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(target.textContent).then(() => announce(button, "Copied"), fallback);
    } else {
      fallback();
    }
  };

  const focusableScrollers = () => {
    for (const element of document.querySelectorAll(".readme pre, .readme table")) {
      if (!element.hasAttribute("tabindex")) {
        element.setAttribute("tabindex", "0");
      }
    }
  };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusableScrollers);
  } else {
    focusableScrollers();
  }

  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button[data-copy-target]") : null;
    if (button) {
      copy(button);
    }
  });
})();
