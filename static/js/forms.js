// Small form behaviours every page may use, kept out of the templates so the Content Security Policy allows no
// inline script or event handler:
// - a submit button with data-confirm="question" asks before its form is sent;
// - a select with data-autosubmit sends its form when it changes (the form keeps a <noscript> button).
(function () {
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });
  document.addEventListener("change", function (event) {
    var select = event.target.closest("[data-autosubmit]");
    if (select && select.form) select.form.submit();
  });
})();
