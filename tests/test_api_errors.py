"""The one API error shape for request bodies Django itself refuses while DRF parses them."""

import pytest
from rest_framework.test import APIClient

from mlops_site.roles import user_token_refresh
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_api_form_body_with_too_many_fields_is_a_400_in_the_error_shape(settings):
    # Found by the schema fuzzer (tests/test_api_fuzz.py): Django's TooManyFieldsSent became its HTML 400 page.
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    editor = make_user("fields-editor", "editor", password="fields-" + "editor-passphrase-7")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user_token_refresh(user=editor)}")

    response = client.post("/api/v1/labels/", "&".join(f"f{i}=x" for i in range(11)), content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert set(response.json()) == {"message", "code", "extra"}
