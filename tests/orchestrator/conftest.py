from tests.fixtures_s3 import moto_endpoint, s3_bucket, s3_env  # noqa: F401
