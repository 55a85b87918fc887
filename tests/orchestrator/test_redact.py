import pytest

from orchestrator.redact import has_credentials, redact_uri


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("postgresql://mlflow:s3cr3t@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
        ("https://tok3n@mlflow.example.org", "https://***@mlflow.example.org"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:////tmp/x/mlflow.db", "sqlite:////tmp/x/mlflow.db"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("/plain/path", "/plain/path"),
        ("https://h/x?X-Amz-Signature=abc&region=eu", "https://h/x?X-Amz-Signature=***&region=eu"),
    ],
)
def test_redact_uri(uri, expected):
    assert redact_uri(uri) == expected
    assert "s3cr3t" not in redact_uri(uri) and "tok3n" not in redact_uri(uri)
    assert has_credentials(uri) == (uri != expected)
