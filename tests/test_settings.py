"""Production settings: `check --deploy` is clean under the documented production environment, the development
secret key never runs with debug off, and a bad number or flag in the environment fails naming the variable.
Settings are read once per process, so each case starts its own Python with the environment under test."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A key as `get_random_secret_key()` makes them: 50 characters, many distinct, no "django-insecure" prefix.
REAL_LOOKING_KEY = "q8#v1m$z0w!k7e@r3t^y6u&i9o(p2a)s5d-f4g+h_j1k=l8z%x"
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": REAL_LOOKING_KEY,
    "DJANGO_ALLOWED_HOSTS": "mlops.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://mlops.example.com",
    "DJANGO_BEHIND_TLS_PROXY": "1",
    "DJANGO_SECURE_HSTS_PRELOAD": "1",
}
SETTINGS_VARIABLES = ("DJANGO_", "MLOPS_INSECURE_HTTP", "MLOPS_PAGE_SIZE", "MLOPS_PROXY_COUNT", "MLOPS_S3_", "EMAIL_", "AWS_")


def run_python(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Python in the project with the parent's environment minus every Django setting, plus `env_overrides`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(SETTINGS_VARIABLES)}
    env.update(env_overrides, DJANGO_SETTINGS_MODULE="mlops_site.settings")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def settings_values(env_overrides: dict[str, str], *names: str) -> dict:
    code = f"import json; from django.conf import settings; print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}))"
    done = run_python(env_overrides, "-c", code)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_check_deploy_production_environment_is_clean():
    done = run_python(PRODUCTION_ENV, "manage.py", "check", "--deploy", "--fail-level", "WARNING")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout
    assert "WARNING" not in done.stdout + done.stderr


def test_settings_production_cookies_are_secure_and_http_redirects():
    values = settings_values(PRODUCTION_ENV, "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
                             "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_PROXY_SSL_HEADER")

    assert values == {
        "DEBUG": False, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31536000, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


def test_settings_development_run_is_plain_http():
    values = settings_values({}, "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS")

    assert values == {"DEBUG": True, "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False, "SECURE_SSL_REDIRECT": False,
                      "SECURE_HSTS_SECONDS": 0}


def test_settings_insecure_http_flag_allows_a_local_production_try():
    values = settings_values({**PRODUCTION_ENV, "DJANGO_SECURE_HSTS_PRELOAD": "", "MLOPS_INSECURE_HTTP": "1"},
                             "DEBUG", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS")

    assert values == {"DEBUG": False, "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False, "SECURE_SSL_REDIRECT": False,
                      "SECURE_HSTS_SECONDS": 0}


def test_settings_hsts_and_redirect_come_from_the_environment():
    env = {**PRODUCTION_ENV, "DJANGO_SECURE_HSTS_SECONDS": "600", "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "0",
           "DJANGO_SECURE_SSL_REDIRECT": "0"}

    values = settings_values(env, "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_SSL_REDIRECT")

    assert values == {"SECURE_HSTS_SECONDS": 600, "SECURE_HSTS_INCLUDE_SUBDOMAINS": False, "SECURE_HSTS_PRELOAD": True,
                      "SECURE_SSL_REDIRECT": False}


def test_settings_debug_off_without_secret_key_refuses_to_start():
    done = run_python({"DJANGO_DEBUG": "0"}, "manage.py", "check")

    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_DEBUG is off but DJANGO_SECRET_KEY is not set" in done.stderr


def test_settings_debug_off_with_the_development_key_refuses_to_start():
    env = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "django-insecure-dev-key-change-me-in-production-0123456789"}

    done = run_python(env, "manage.py", "check")

    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_DEBUG is off but DJANGO_SECRET_KEY is not set (or is the development key)" in done.stderr


def test_settings_invalid_number_fails_naming_the_variable():
    done = run_python({**PRODUCTION_ENV, "DJANGO_SECURE_HSTS_SECONDS": "1y"}, "manage.py", "check")

    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECURE_HSTS_SECONDS must be a whole number; got '1y'." in done.stderr


def test_settings_proxy_count_is_read_and_a_negative_one_refused():
    assert settings_values({"MLOPS_PROXY_COUNT": "2"}, "MLOPS_PROXY_COUNT", "AXES_CLIENT_IP_CALLABLE") == {
        "MLOPS_PROXY_COUNT": 2, "AXES_CLIENT_IP_CALLABLE": "mlops_site.client_ip.client_ip"}
    done = run_python({"MLOPS_PROXY_COUNT": "-1"}, "manage.py", "check")

    assert done.returncode != 0
    assert "ImproperlyConfigured: MLOPS_PROXY_COUNT must be 0 (no proxy)" in done.stderr


def test_settings_invalid_flag_fails_naming_the_variable():
    done = run_python({"DJANGO_DEBUG": "ture"}, "manage.py", "check")

    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_DEBUG must be one of 1/0, true/false, yes/no, on/off; got 'ture'." in done.stderr


S3_ENV = {"MLOPS_S3_BUCKET": "mlops-artifacts", "MLOPS_S3_ENDPOINT_URL": "http://localhost:9000", "MLOPS_S3_REGION": "eu-west-1",
          "MLOPS_S3_PREFIX": "prod/", "MLOPS_S3_ADDRESSING_STYLE": "path",
          "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
# The storage the registry saves artifacts through, built as the site builds it; boto3 makes no request until a file
# is read or written, so this needs no bucket and no network.
DEFAULT_STORAGE = ("import json; from django.core.files.storage import storages; s = storages['default']; "
                   "print(json.dumps({'class': type(s).__module__ + '.' + type(s).__name__, 'bucket': getattr(s, 'bucket_name', None), "
                   "'endpoint': getattr(s, 'endpoint_url', None), 'region': getattr(s, 'region_name', None), "
                   "'location': getattr(s, 'location', None), 'overwrite': getattr(s, 'file_overwrite', None), "
                   "'acl': getattr(s, 'default_acl', 'n/a'), 'addressing': getattr(s, 'addressing_style', None), "
                   "'signature': getattr(s, 'signature_version', None)}))")


def test_settings_s3_bucket_switches_artifact_storage_to_django_storages():
    done = run_python(S3_ENV, "-c", "import django; django.setup(); " + DEFAULT_STORAGE)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"class": "storages.backends.s3.S3Storage", "bucket": "mlops-artifacts",
                                       "endpoint": "http://localhost:9000", "region": "eu-west-1", "location": "prod",
                                       "overwrite": False, "acl": None, "addressing": "path", "signature": "s3v4"}


def test_settings_s3_client_signs_urls_with_the_environment_credentials_at_the_endpoint():
    code = ("import django; django.setup(); from django.core.files.storage import storages; s = storages['default']; "
            "from urllib.parse import urlsplit, parse_qs; u = urlsplit(s.url('artifacts/m/1/model.bin')); "
            "print(u.scheme, u.netloc, u.path, parse_qs(u.query)['X-Amz-Credential'][0].split('/')[0])")

    done = run_python(S3_ENV, "-c", code)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["http", "localhost:9000", "/mlops-artifacts/prod/artifacts/m/1/model.bin", "AKIDEXAMPLE"]


def test_settings_without_a_bucket_artifacts_stay_in_the_media_folder():
    done = run_python({}, "-c", "import django; django.setup(); " + DEFAULT_STORAGE)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["class"] == "django.core.files.storage.filesystem.FileSystemStorage"


def test_settings_smtp_login_and_starttls_reach_django_smtp_backend():
    env = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "smtp.example.com", "EMAIL_PORT": "587",
           "EMAIL_HOST_USER": "alerts@example.com", "EMAIL_HOST_PASSWORD": "s3cret", "EMAIL_USE_TLS": "1", "EMAIL_TIMEOUT": "12"}
    code = ("import django; django.setup(); from django.core.mail import get_connection; c = get_connection(); "
            "print(type(c).__module__, c.host, c.port, c.username, c.password, c.use_tls, c.use_ssl, c.timeout)")

    done = run_python(env, "-c", code)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["django.core.mail.backends.smtp", "smtp.example.com", "587", "alerts@example.com", "s3cret",
                                   "True", "False", "12"]


def test_settings_smtp_tls_and_ssl_together_refuse_to_start_naming_both():
    done = run_python({"EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}, "manage.py", "check")

    assert done.returncode != 0
    assert "EMAIL_USE_TLS" in done.stderr and "EMAIL_USE_SSL" in done.stderr
