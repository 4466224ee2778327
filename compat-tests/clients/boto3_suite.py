#!/usr/bin/env python3
"""boto3 steps of the real-client suite (compat-tests/clients/run.sh).

    boto3_suite.py STEP     STEP: transfer, paginate, delete_objects, presign

Reads ENDPOINT, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the
environment and works in the current directory. The client keeps botocore's
default checksum settings (since 1.36: CRC32 on every upload, responses
validated when the object has a checksum). Exits non-zero on the first
mismatch.
"""

import concurrent.futures
import hashlib
import os
import sys
import time

import boto3
import botocore
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

BUCKET = "boto3-bucket"
TREE_KEYS = 2500
HTTP_TIMEOUT_S = 60


def client():
    return boto3.client(
        "s3",
        endpoint_url=os.environ["ENDPOINT"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1, "mode": "standard"},  # no hidden retries
            connect_timeout=10,
            read_timeout=HTTP_TIMEOUT_S,
            max_pool_connections=16,
        ),
    )


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAIL: {message}")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_random(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n


def transfer():
    """upload_file/download_file: one small object, one multipart object."""
    s3 = client()
    print("botocore", botocore.__version__)
    check(
        tuple(int(x) for x in botocore.__version__.split(".")[:2]) >= (1, 36),
        "botocore >= 1.36 needed: its default checksums are what this tests",
    )
    s3.create_bucket(Bucket=BUCKET)
    config = TransferConfig()  # defaults: multipart from 8 MiB, 8 MiB parts
    for name, size, parts in (("small.bin", 100_000, None), ("big.bin", 40 << 20, 5)):
        write_random(name, size)
        key = f"transfer/{name}"
        s3.upload_file(name, BUCKET, key, Config=config)
        head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        check(head["ContentLength"] == size, f"{key}: ContentLength {head['ContentLength']}")
        etag = head["ETag"].strip('"')
        if parts is None:
            with open(name, "rb") as f:
                md5 = hashlib.md5(f.read()).hexdigest()
            check(etag == md5, f"{key}: ETag {etag}, MD5 {md5}")
        else:
            check(etag.endswith(f"-{parts}"), f"{key}: ETag {etag} is not of {parts} parts")
        check("ChecksumCRC32" in head, f"{key}: no CRC32 stored (default checksums): {head}")
        s3.download_file(BUCKET, key, name + ".back", Config=config)
        check(sha256_file(name) == sha256_file(name + ".back"), f"{key}: download differs")
        os.remove(name + ".back")
        print("ok", key, head.get("ChecksumCRC32"), head.get("ChecksumType"))


def tree_key(i):
    # 10 x 10 directories of 25 keys each, under tree/.
    return f"tree/d{i % 10}/s{(i // 10) % 10}/f{i:04d}.txt"


def first_difference(got, want):
    for i, (a, b) in enumerate(zip(got + [None] * len(want), want + [None] * len(got))):
        if a != b:
            return f"at {i}: got {a!r}, want {b!r}"
    return None


def paginate():
    """list_objects_v2 over 2,500 keys: full pages, small pages, delimiters."""
    s3 = client()
    keys = sorted(tree_key(i) for i in range(TREE_KEYS))
    check(len(set(keys)) == TREE_KEYS, "test keys not unique")
    extra = ["top-level.txt", "tree.txt", "tree/readme"]

    def put(key):
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        for future in [pool.submit(put, k) for k in keys + extra]:
            future.result()
    print(f"put {len(keys) + len(extra)} keys in {time.monotonic() - started:.1f}s")

    paginator = s3.get_paginator("list_objects_v2")
    for page_size in (None, 300):
        args = {"Bucket": BUCKET, "Prefix": "tree/"}
        if page_size:
            args["PaginationConfig"] = {"PageSize": page_size}
        listed, pages = [], 0
        for page in paginator.paginate(**args):
            pages += 1
            contents = page.get("Contents", [])
            check(page["KeyCount"] == len(contents), f"KeyCount {page['KeyCount']}")
            listed += [c["Key"] for c in contents]
            for c in contents:
                check(c["Size"] == len(c["Key"]), f"{c['Key']}: Size {c['Size']}")
        want = sorted(keys + ["tree/readme"])
        check(listed == want, f"page size {page_size}: {len(listed)} keys listed, want "
              f"{len(want)}; first difference: {first_difference(listed, want)}")
        want_pages = -(-len(want) // (page_size or 1000))
        check(pages == want_pages, f"page size {page_size}: {pages} pages, want {want_pages}")
        print(f"ok: {len(listed)} keys in {pages} pages of {page_size or 1000}")

    def delimited(prefix, page_size=None):
        args = {"Bucket": BUCKET, "Prefix": prefix, "Delimiter": "/"}
        if page_size:
            args["PaginationConfig"] = {"PageSize": page_size}
        found_keys, found_prefixes = [], []
        for page in paginator.paginate(**args):
            found_keys += [c["Key"] for c in page.get("Contents", [])]
            found_prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return found_keys, found_prefixes

    for page_size in (None, 3):
        got = delimited("", page_size)
        want = (["top-level.txt", "tree.txt"], ["transfer/", "tree/"])  # transfer/: earlier step
        check(got == want, f"root: {got}")
        got = delimited("tree/", page_size)
        want = (["tree/readme"], [f"tree/d{d}/" for d in range(10)])
        check(got == want, f"tree/ (page size {page_size}): {got}")
        got = delimited("tree/d3/", page_size)
        want = ([], [f"tree/d3/s{s}/" for s in range(10)])
        check(got == want, f"tree/d3/: {got}")
        got = delimited("tree/d3/s4/", page_size)
        want = ([k for k in keys if k.startswith("tree/d3/s4/")], [])
        check(got == want and len(want[0]) == 25, f"tree/d3/s4/: {got}")
    # A prefix that is not a directory boundary.
    got = delimited("tree/d1")
    check(got == ([], ["tree/d1/"]), f"tree/d1: {got}")
    # StartAfter, and ListObjects v1 with markers.
    after = s3.list_objects_v2(Bucket=BUCKET, Prefix="tree/", StartAfter=keys[1234], MaxKeys=5)
    check([c["Key"] for c in after["Contents"]] == keys[1235:1240], f"StartAfter: {after['Contents']}")
    listed = []
    for page in s3.get_paginator("list_objects").paginate(
        Bucket=BUCKET, Prefix="tree/d7/", PaginationConfig={"PageSize": 100}
    ):
        listed += [c["Key"] for c in page.get("Contents", [])]
    check(listed == [k for k in keys if k.startswith("tree/d7/")], f"v1: {len(listed)} keys")
    # Contents, not only names.
    for key in (keys[0], keys[1777], keys[-1]):
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        check(body == key.encode(), f"{key}: body {body!r}")
    print("ok: delimiters, StartAfter, v1, bodies")


def delete_objects():
    """delete_objects in batches of 1000 (a checksum is required: CRC32)."""
    s3 = client()
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys += [c["Key"] for c in page.get("Contents", [])]
    check(len(keys) >= TREE_KEYS, f"only {len(keys)} keys to delete")
    deleted = []
    for start in range(0, len(keys), 1000):
        batch = keys[start : start + 1000]
        reply = s3.delete_objects(
            Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in batch]}
        )
        errors = reply.get("Errors", [])
        check(not errors, f"{len(errors)} errors, the first: {errors[:3]}")
        deleted += [d["Key"] for d in reply.get("Deleted", [])]
    check(sorted(deleted) == sorted(keys), f"{len(deleted)} of {len(keys)} reported deleted")
    # Quiet mode, and a key that does not exist (deleting it is a success).
    reply = s3.delete_objects(
        Bucket=BUCKET, Delete={"Objects": [{"Key": "never-was"}], "Quiet": True}
    )
    check(not reply.get("Deleted") and not reply.get("Errors"), f"quiet: {reply}")
    left = s3.list_objects_v2(Bucket=BUCKET)
    check(left["KeyCount"] == 0, f"{left['KeyCount']} keys left")
    print(f"ok: deleted {len(deleted)} keys")


def presign():
    """Presigned GET and PUT through requests; an expired URL is refused."""
    s3 = client()
    body = os.urandom(300_000)
    s3.put_object(Bucket=BUCKET, Key="presigned/get.bin", Body=body)
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "presigned/get.bin"}, ExpiresIn=300
    )
    reply = requests.get(url, timeout=HTTP_TIMEOUT_S)
    check(reply.status_code == 200, f"presigned GET: {reply.status_code} {reply.text[:500]}")
    check(reply.content == body, "presigned GET: body differs")

    upload = os.urandom(200_000)
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": "presigned/put.bin"}, ExpiresIn=300
    )
    reply = requests.put(url, data=upload, timeout=HTTP_TIMEOUT_S)
    check(reply.status_code == 200, f"presigned PUT: {reply.status_code} {reply.text[:500]}")
    stored = s3.get_object(Bucket=BUCKET, Key="presigned/put.bin")["Body"].read()
    check(stored == upload, "presigned PUT: stored body differs")
    check(reply.headers.get("ETag", "").strip('"') == hashlib.md5(upload).hexdigest(),
          f"presigned PUT: ETag {reply.headers.get('ETag')}")

    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "presigned/get.bin"}, ExpiresIn=1
    )
    time.sleep(2)
    reply = requests.get(url, timeout=HTTP_TIMEOUT_S)
    check(reply.status_code == 403 and "AccessDenied" in reply.text,
          f"expired presigned GET: {reply.status_code} {reply.text[:500]}")
    # A tampered signature is refused.
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "presigned/get.bin"}, ExpiresIn=300
    )
    reply = requests.get(url.replace("presigned/get.bin", "presigned/put.bin"), timeout=HTTP_TIMEOUT_S)
    check(reply.status_code == 403, f"tampered presigned GET: {reply.status_code}")

    for key in ("presigned/get.bin", "presigned/put.bin"):
        s3.delete_object(Bucket=BUCKET, Key=key)
    s3.delete_bucket(Bucket=BUCKET)
    print("ok: presigned GET, PUT, expiry, tampering")


STEPS = {f.__name__: f for f in (transfer, paginate, delete_objects, presign)}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in STEPS:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(STEPS)}")
    STEPS[sys.argv[1]]()
