// Hover details for plot points and click-to-sort tables. No dependencies, no network.
(function () {
  "use strict";
  const tip = document.getElementById("tooltip");

  function showTip(point, x, y) {
    tip.replaceChildren(...point.dataset.tip.split("\n").map((line) => {
      const div = document.createElement("div");
      div.textContent = line;
      return div;
    }));
    tip.hidden = false;
    const box = tip.getBoundingClientRect();
    tip.style.left = Math.min(x + 14, window.innerWidth - box.width - 8) + "px";
    tip.style.top = Math.min(y + 14, window.innerHeight - box.height - 8) + "px";
  }

  document.querySelectorAll("svg.pareto .point").forEach((point) => {
    point.addEventListener("mousemove", (event) => showTip(point, event.clientX, event.clientY));
    point.addEventListener("focus", () => {
      const box = point.getBoundingClientRect();
      showTip(point, box.right, box.bottom);
    });
    point.addEventListener("mouseleave", () => { tip.hidden = true; });
    point.addEventListener("blur", () => { tip.hidden = true; });
  });

  function sortKey(cell) {
    return cell.dataset.sort === undefined ? null : Number(cell.dataset.sort);
  }

  document.querySelectorAll("table.sortable").forEach((table) => {
    table.querySelectorAll("th").forEach((th, index) => {
      th.addEventListener("click", () => {
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        const numeric = rows.some((row) => sortKey(row.cells[index]) !== null);
        // First click: numbers largest first, text A to Z; then alternate.
        const descending = th.classList.contains("sorted-desc") ? false
          : th.classList.contains("sorted-asc") ? true : numeric;
        table.querySelectorAll("th").forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
        th.classList.add(descending ? "sorted-desc" : "sorted-asc");
        rows.sort((a, b) => {
          const ka = sortKey(a.cells[index]), kb = sortKey(b.cells[index]);
          let order;
          if (ka !== null || kb !== null) {
            if (ka === null) return 1;
            if (kb === null) return -1;
            order = ka - kb;
          } else {
            order = a.cells[index].textContent.localeCompare(b.cells[index].textContent);
          }
          return descending ? -order : order;
        });
        body.append(...rows);
      });
    });
  });
})();
