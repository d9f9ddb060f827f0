// Canary bits of the version pages (models and prompts), on the rollouts API with the session:
// - the promote form's "Roll out as a canary" fields are enabled only while the target is the stage a canary goes to
//   (production, prod), and the policy box offers the rollout policies' names (GET /api/v1/rollout-policies);
// - the "Rolling out as a canary" banner says the rollout's stage and share and links the rollout itself
//   (GET /api/v1/rollouts?model=|prompt=).
// Without this script the form still posts (the server refuses a canary to another stage, saying why) and the
// banner links the rollouts list filtered to this promotion.
(function () {
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(url + ": " + r.status);
      return r.json();
    });
  }

  var fields = document.getElementById("canary-fields");
  if (fields) {
    var form = fields.closest("form");
    var target = form.elements["to"];
    var box = document.getElementById("canary-strategy");
    var policy = form.elements["policy"];
    var sync = function () {
      fields.disabled = target.value !== fields.dataset.canaryStage;
      policy.disabled = fields.disabled || !box.checked;
    };
    target.addEventListener("change", sync);
    box.addEventListener("change", sync);
    sync();
    getJSON("/api/v1/rollout-policies?page_size=500").then(function (page) {
      var list = document.getElementById("rollout-policy-names");
      list.textContent = "";
      page.results.forEach(function (p) {
        var option = document.createElement("option");
        option.value = p.name;
        option.textContent = p.name + " v" + p.version;
        list.appendChild(option);
      });
    }).catch(function () { /* the box still takes a typed name */ });
  }

  var banner = document.getElementById("rolling-out");
  if (banner) {
    var promotion = Number(banner.dataset.promotion);
    var query = encodeURIComponent(banner.dataset.kind) + "=" + encodeURIComponent(banner.dataset.name);
    getJSON("/api/v1/rollouts?" + query).then(function (page) {
      var rollout = page.results.filter(function (r) { return r.promotion_id === promotion; })[0];
      if (!rollout) return;
      banner.querySelector("[data-rollout-stage]").textContent =
        ": stage " + rollout.stage + ", " + rollout.traffic_percent + " %" + (rollout.status === "paused" ? " (paused)" : "");
      banner.querySelector("#rollout-link").href = "/rollouts/" + rollout.id + "/";
    }).catch(function () { /* the link to the list still works */ });
  }
})();
