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
