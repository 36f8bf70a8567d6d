"""dlt's filesystem source -> postgres (COPY, csv loader files) over every
incoming/*.csv of a bucket: the peer of the small-files case. Prints one
`dlt files=N rows=R secs=S` line. dlt does not move the files."""
import os
import sys
import time

import dlt
from dlt.common.configuration.specs import AwsCredentials
from dlt.sources.filesystem import filesystem, read_csv

bucket, pg_url = sys.argv[1], sys.argv[2]
creds = AwsCredentials(
    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "x"),
    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "x"),
    endpoint_url=os.environ["S3LOADER_TEST_SEAWEEDFS"],
    region_name="us-east-1",
)
start = time.monotonic()
files = filesystem(bucket_url=f"s3://{bucket}/incoming/", file_glob="*.csv", credentials=creds)
pipeline = dlt.pipeline(
    pipeline_name=f"bench_{int(start)}",
    destination=dlt.destinations.postgres(credentials=pg_url),
    dataset_name="dlt_bench",
)
info = pipeline.run((files | read_csv()).with_name("orders"), loader_file_format="csv")
secs = time.monotonic() - start
rows = pipeline.last_trace.last_normalize_info.row_counts.get("orders", 0)
print(f"dlt files={len(list(files))} rows={rows} secs={secs:.3f}")
