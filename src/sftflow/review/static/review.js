// Keyboard shortcuts for the review page (press ? there). The page works without them:
// every control is a plain form input, and the server validates what is submitted.
(function () {
  "use strict";
  const form = document.getElementById("rating-form");
  const help = document.getElementById("help");
  const helpButton = document.getElementById("help-button");
  if (help && helpButton) { helpButton.addEventListener("click", function () { help.hidden = !help.hidden; }); }

  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type !== "radio" && target.type !== "checkbox"));
  }

  if (!form) { return; }

  const rows = Array.prototype.slice.call(form.querySelectorAll("[data-score-row]"));
  let current = 0;

  function highlight(i) {
    current = (i + rows.length) % rows.length;
    rows.forEach(function (row, k) { row.classList.toggle("current", k === current); });
  }

  function score(value) {
    const input = rows[current].querySelector('input[value="' + value + '"]');
    input.checked = true;
    if (current < rows.length - 1) { highlight(current + 1); }
  }

  function selectedIn() {
    // Text selected inside an output: which side, and the text (the hallucinated span).
    const sel = window.getSelection();
    if (!sel || sel.isCollapsed || !sel.anchorNode) { return null; }
    const node = sel.anchorNode.nodeType === 1 ? sel.anchorNode : sel.anchorNode.parentElement;
    const out = node && node.closest(".output");
    return out ? { side: out.dataset.side, text: sel.toString().trim() } : null;
  }

  function flag(kind, side) {
    const selection = kind === "hallucination" ? selectedIn() : null;
    if (selection) {
      side = selection.side;
      form.elements[side + "_span"].value = selection.text;
      form.elements[side + "_span"].closest("details").open = true;
      form.elements[side + "_hallucination"].checked = true;
      window.getSelection().removeAllRanges();
      return;
    }
    const box = form.elements[side + "_" + kind];
    box.checked = !box.checked;
  }

  function prefer(value) {
    form.querySelector('input[name="preferred"][value="' + value + '"]').checked = true;
  }

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape") {
      if (typing(e.target)) { e.target.blur(); }
      help.hidden = true;
      return;
    }
    if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) { return; }
    const k = e.key;
    let handled = true;
    if (k.length === 1 && "12345".indexOf(k) >= 0) { score(k); }
    else if (k === "j" || k === "ArrowDown") { highlight(current + 1); }
    else if (k === "k" || k === "ArrowUp") { highlight(current - 1); }
    else if (k === "a") { prefer("A"); }
    else if (k === "b") { prefer("B"); }
    else if (k === "t") { prefer("tie"); }
    else if (k === "h") { flag("hallucination", "a"); }
    else if (k === "H") { flag("hallucination", "b"); }
    else if (k === "s") { flag("safety", "a"); }
    else if (k === "S") { flag("safety", "b"); }
    else if (k === "n") {
      const note = form.elements[rows[current].dataset.side + "_note"];
      note.closest("details").open = true;
      note.focus();
    }
    else if (k === "x") { form.requestSubmit(document.getElementById("skip")); }
    else if (k === "Enter") { form.requestSubmit(document.getElementById("submit")); }
    else if (k === "?") { help.hidden = !help.hidden; }
    else { handled = false; }
    if (handled) { e.preventDefault(); }
  });

  highlight(0);
})();
