// The experiment design form: a live sample-size calculator (GET /api/v1/experiments/sample-size with the
// session), the subject's versions offered in the variant rows, rows added and removed in the page, the
// weights' sum, and the baseline field the metric's kind needs. Without this script the form still works:
// its row buttons submit and the server re-renders it.
(function () {
  var form = document.getElementById("design-form");
  if (!form) return;
  var subjects = JSON.parse(document.getElementById("design-subjects").textContent);
  var eventMetrics = JSON.parse(document.getElementById("event-metrics").textContent);
  var calculator = document.getElementById("calculator");
  var maxVariants = parseInt(form.dataset.maxVariants, 10) || 10;
  var timer = null;
  var sequence = 0;

  function field(name) {
    var el = form.elements[name];
    return el && typeof el.value === "string" ? el.value.trim() : "";
  }
  function all(name) {
    return Array.prototype.slice.call(form.querySelectorAll("[name=" + name + "]"));
  }
  function subject() {
    var value = field("subject");
    var at = value.indexOf(":");
    return at < 0 ? null : { kind: value.slice(0, at), name: value.slice(at + 1) };
  }
  function variantRows() {
    return form.querySelectorAll("#variant-table tbody tr");
  }
  function set(id, text) {
    document.getElementById(id).textContent = text;
  }
  function count(n) {
    return Number(n).toLocaleString("en-US");
  }

  // --- the subject's versions -------------------------------------------------------------------------------------
  function versionsOf(s) {
    return s && subjects[s.kind] && subjects[s.kind][s.name] ? subjects[s.kind][s.name] : [];
  }
  function offerVersions(prefill) {
    var versions = versionsOf(subject());
    var list = document.getElementById("subject-versions");
    list.innerHTML = "";
    versions.forEach(function (v) {
      var option = document.createElement("option");
      option.value = String(v);
      list.appendChild(option);
    });
    var inputs = all("variant_version");
    if (prefill && versions.length && inputs.every(function (i) { return !i.value.trim(); })) {
      // The control on the older version, the challenger on the newest.
      if (inputs[0]) inputs[0].value = String(versions.length > 1 ? versions[1] : versions[0]);
      if (inputs[1]) inputs[1].value = String(versions[0]);
    }
  }

  // --- rows ---------------------------------------------------------------------------------------------------------
  function renumber(table) {
    table.querySelectorAll("tbody tr").forEach(function (row, i) {
      var button = row.querySelector("[data-remove-row]");
      if (button) button.value = button.value.replace(/-\d+$/, "-" + i);
    });
  }
  form.addEventListener("click", function (event) {
    var add = event.target.closest("[data-add-row]");
    var remove = event.target.closest("[data-remove-row]");
    if (add) {
      event.preventDefault();
      var table = document.getElementById(add.dataset.addRow);
      var rows = table.querySelectorAll("tbody tr");
      if (table.id === "variant-table" && rows.length >= maxVariants) return;
      var copy = rows[rows.length - 1].cloneNode(true);
      copy.querySelectorAll("input").forEach(function (input) { input.value = ""; input.classList.remove("invalid"); });
      table.querySelector("tbody").appendChild(copy);
      renumber(table);
      copy.querySelector("input").focus();
      changed();
    } else if (remove) {
      event.preventDefault();
      var row = remove.closest("tr");
      var body = row.parentNode;
      var isVariant = body.closest("table").id === "variant-table";
      if (body.querySelectorAll("tr").length <= (isVariant ? 2 : 1)) {
        row.querySelectorAll("input").forEach(function (input) { input.value = ""; });
      } else {
        body.removeChild(row);
      }
      renumber(body.closest("table"));
      changed();
    }
  });

  // --- what the fields imply ------------------------------------------------------------------------------------------
  function showBaseline() {
    var kind = field("primary_kind");
    form.querySelectorAll("[data-kind]").forEach(function (label) {
      label.hidden = label.dataset.kind !== kind;
    });
  }
  function showWeights() {
    var filled = all("variant_weight").filter(function (i) { return i.value.trim(); });
    var total = filled.reduce(function (sum, i) { return sum + (parseFloat(i.value) || 0); }, 0);
    var out = document.getElementById("weight-sum");
    total = Math.round(total * 100) / 100;
    out.textContent = filled.length ? "Weights sum to " + total + (total === 100 ? " ✓" : ": they must sum to 100") : "";
    out.classList.toggle("weights-off", filled.length > 0 && total !== 100);
  }

  // --- the calculator -------------------------------------------------------------------------------------------------
  function query() {
    var kind = field("primary_kind");
    var params = new URLSearchParams({ kind: kind, mde: field("mde"), alpha: field("alpha") || "0.05", power: field("power") || "0.8" });
    params.set("arms", String(Math.max(2, Math.min(maxVariants, variantRows().length))));
    if (kind === "proportion") params.set("baseline", field("baseline_rate"));
    else params.set("std", field("baseline_std"));
    var s = subject();
    if (s) params.set(s.kind, s.name);
    return params;
  }
  function duration(answer) {
    if (answer.days === null) return answer.units_per_day === null && subject() ? "unknown: no traffic in the last 7 days" : "unknown: choose a subject";
    if (answer.days < 1) return "under a day";
    var days = Math.ceil(answer.days);
    return days + " day" + (days === 1 ? "" : "s") + (days >= 14 ? " (" + (days / 7).toFixed(1) + " weeks)" : "");
  }
  function show(answer) {
    set("calc-per-arm", count(answer.per_arm));
    set("calc-arms", String(answer.arms));
    set("calc-total", count(answer.total));
    set("calc-per-day", answer.units_per_day === null ? "—" : count(Math.round(answer.units_per_day)) + " units a day");
    set("calc-days", duration(answer));
    set("calc-method", "Method: " + answer.method + ".");
    document.getElementById("calc-error").hidden = true;
    calculator.dataset.state = "ready";
  }
  function fail(message) {
    ["calc-per-arm", "calc-total", "calc-days"].forEach(function (id) { set(id, "—"); });
    var error = document.getElementById("calc-error");
    error.textContent = message;
    error.hidden = false;
    calculator.dataset.state = "error";
  }
  function compute() {
    var mine = ++sequence;
    calculator.dataset.state = "loading";
    fetch(form.dataset.sampleSizeUrl + "?" + query().toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (mine !== sequence) return; // an older answer arriving after a newer question
        if (result.ok) show(result.body);
        else fail(result.body.message || "The calculator refused these inputs.");
      })
      .catch(function () {
        if (mine === sequence) fail("The calculator could not be reached.");
      });
  }
  function changed() {
    showBaseline();
    showWeights();
    calculator.dataset.state = "pending"; // "ready" again once the answer to the newest inputs is shown
    clearTimeout(timer);
    timer = setTimeout(compute, 250);
  }

  form.addEventListener("input", changed);
  form.addEventListener("change", function (event) {
    if (event.target.name === "subject") offerVersions(true);
    if (event.target.name === "primary_name" && eventMetrics.indexOf(event.target.value.trim()) >= 0) {
      form.elements.primary_kind.value = "mean"; // metrics of the monitoring events are means per unit
    }
    changed();
  });
  // A subject may already be chosen when this runs (the form came back, or it was picked while the page was still
  // loading): its versions fill the variant rows if they are all empty, as a change of subject would.
  offerVersions(true);
  changed();
})();
