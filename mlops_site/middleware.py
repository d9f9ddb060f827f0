"""Every HTML page needs a login; the API answers 401 itself (DRF), /healthz is open."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login

OPEN_PREFIXES = ("/healthz", "/accounts/login", "/static/", "/favicon.ico", "/api/", "/admin/")


class LoginRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        # The Swagger page is HTML: send a browser to the login page rather than answer 401.
        is_open = path.startswith(OPEN_PREFIXES) and not path.startswith("/api/v1/docs")
        if not request.user.is_authenticated and not is_open:
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)
