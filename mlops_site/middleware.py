"""Every HTML page needs a login and at least the viewer role; the API answers 401/403 itself (DRF)."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render

from .roles import VIEWER, has_role

OPEN_PREFIXES = ("/healthz", "/accounts/", "/static/", "/favicon.ico", "/api/", "/admin/", "/metrics")


class LoginRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        # The Swagger page is HTML: a browser goes to the login page rather than getting a 401.
        if not path.startswith(OPEN_PREFIXES) or path.startswith("/api/v1/docs"):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
            if not has_role(request.user, VIEWER):
                return render(request, "403_no_role.html", status=403)
        return self.get_response(request)


def csp_header(policy: str, extra: str = "") -> str:
    """`policy` with `extra`'s sources added: both are "directive source ...; directive source ..." strings. A
    directive in `extra` that `policy` lacks is appended; a source already there is not repeated."""
    directives: dict[str, list[str]] = {}
    for text in (policy, extra):
        for part in text.split(";"):
            if words := part.split():
                listed = directives.setdefault(words[0].lower(), [])
                listed.extend(s for s in words[1:] if s not in listed)
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


class ContentSecurityPolicyMiddleware:
    """The Content-Security-Policy header on every response (settings.MLOPS_CSP plus MLOPS_CSP_EXTRA). No page
    runs an inline script, event handler or style attribute, so a script injected into a page does not run."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.header = csp_header(settings.MLOPS_CSP, settings.MLOPS_CSP_EXTRA)

    def __call__(self, request):
        response = self.get_response(request)
        if self.header:
            response.headers.setdefault("Content-Security-Policy", self.header)
        return response
