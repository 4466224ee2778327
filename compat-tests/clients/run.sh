#!/usr/bin/env bash
# The real-client suite: starts a fresh `arbor serve` on loopback and drives
# it with the aws CLI, boto3, rclone, restic and s3cmd, checking what comes
# back (hashes, listings), not only exit codes.
#
#   compat-tests/clients/run.sh [CLIENT...]    CLIENT: awscli boto3 rclone restic s3cmd
#
# Environment:
#   ARBOR_BIN          the binary (default: target/debug/arbor)
#   ARBOR_LOG          the server's log filter (default: warn), e.g. debug
#   ARBOR_CLIENTS_VENV venv holding awscli, boto3, s3cmd (default: .venv-clients)
#   KEEP_WORK=1        keep the temporary directory (data, logs) at the end
#
# Each step runs in its own bash with errexit, under a time limit, its output
# in a log that is printed when it fails. The last line is `N passed, N
# failed` (read by CI); the exit status is non-zero if any step failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLIENTS_DIR=$ROOT/compat-tests/clients
ARBOR_BIN=${ARBOR_BIN:-$ROOT/target/debug/arbor}
VENV=${ARBOR_CLIENTS_VENV:-$ROOT/.venv-clients}
if [[ -d $VENV/bin ]]; then
    PATH=$VENV/bin:$PATH
fi
# Seconds: server start, one step, server stop.
START_TIMEOUT=60
STEP_TIMEOUT=${STEP_TIMEOUT:-240}
STOP_TIMEOUT=30
ALL_CLIENTS=(awscli boto3 rclone restic s3cmd)

# Steps that fail because Arbor is wrong, each with the defect. Such a step
# still runs; its failure is reported but not counted, and a pass is counted
# as a failure so the entry is removed when the gateway is fixed.
declare -A EXPECTED_FAILURES=()

if (($# > 0)); then
    CLIENTS=("$@")
else
    CLIENTS=("${ALL_CLIENTS[@]}")
fi
for client in "${CLIENTS[@]}"; do
    [[ " ${ALL_CLIENTS[*]} " == *" $client "* ]] || {
        echo "unknown client $client (known: ${ALL_CLIENTS[*]})" >&2
        exit 2
    }
done
[[ -x $ARBOR_BIN ]] || {
    echo "$ARBOR_BIN not found: cargo build --bin arbor, or set ARBOR_BIN" >&2
    exit 2
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/arbor-clients.XXXXXX")
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ ${KEEP_WORK:-} == 1 ]]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/data" "$WORK/logs" "$WORK/home"

# ---- server ---------------------------------------------------------------

start_server() {
    env -u ARBOR_ACCESS_KEY -u ARBOR_SECRET_KEY ARBOR_LOG="${ARBOR_LOG:-warn}" NO_COLOR=1 \
        "$ARBOR_BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" \
        </dev/null >"$WORK/server.out" 2>"$WORK/server.log" &
    SERVER_PID=$!
    local deadline=$((SECONDS + START_TIMEOUT))
    until grep -q '^secret key:' "$WORK/server.out" 2>/dev/null; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "arbor exited before printing its banner:" >&2
            cat "$WORK/server.out" "$WORK/server.log" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "arbor printed no banner within ${START_TIMEOUT}s" >&2
            exit 1
        fi
        sleep 0.1
    done
    banner() { sed -n "s/^$1:[[:space:]]*//p" "$WORK/server.out" | head -n 1; }
    ENDPOINT=$(banner endpoint)
    ACCESS_KEY=$(banner 'access key')
    SECRET_KEY=$(banner 'secret key')
    [[ $ENDPOINT == http://127.0.0.1:* && -n $ACCESS_KEY && -n $SECRET_KEY ]] || {
        echo "cannot parse the banner:" >&2
        cat "$WORK/server.out" >&2
        exit 1
    }
    HOSTPORT=${ENDPOINT#http://}
}

# SIGTERM, then at most STOP_TIMEOUT seconds for a clean exit (status 0).
stop_server() {
    local pid=$SERVER_PID status
    kill -TERM "$pid"
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "arbor did not stop within ${STOP_TIMEOUT}s of SIGTERM" >&2
            return 1
        fi
        sleep 0.1
    done
    status=0
    wait "$pid" || status=$?
    SERVER_PID=
    if ((status != 0)); then
        echo "arbor exited with status $status after SIGTERM" >&2
        tail -n 20 "$WORK/server.log" >&2
        return 1
    fi
}

# ---- helpers, available inside steps ----------------------------------------

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
same_file() { # same_file EXPECTED ACTUAL
    [[ -f $2 ]] || fail "$2 missing"
    [[ $(sha "$1") == "$(sha "$2")" ]] || fail "$2 differs from $1"
}
expect_eq() { # expect_eq WHAT EXPECTED ACTUAL
    if [[ $2 != "$3" ]]; then
        echo "FAIL: $1" >&2
        diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") >&2 || true
        exit 1
    fi
}
# A file of N random bytes.
make_file() { # make_file PATH BYTES
    mkdir -p "$(dirname "$1")"
    head -c "$2" /dev/urandom >"$1"
}
# A small tree with nested directories, an empty file, a name with a space.
make_tree() { # make_tree DIR
    make_file "$1/top.txt" 1000
    make_file "$1/empty" 0
    make_file "$1/a/one.bin" 70000
    make_file "$1/a/b/two.bin" 300000
    make_file "$1/a/b/c/three.txt" 12
    make_file "$1/space name/four.txt" 4000
    make_file "$1/z/five.bin" 1234567
}
# Relative paths of the files under DIR, sorted in byte order.
tree_files() { (cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }
aws() { command aws --endpoint-url "$ENDPOINT" "$@"; }
# rclone 1.60 fails on any endpoint when AWS_CA_BUNDLE is set.
rclone() { env -u AWS_CA_BUNDLE rclone --config "$WORK/rclone.conf" --retries 1 \
    --low-level-retries 2 --contimeout 10s --timeout 60s "$@"; }
restic() { env -u AWS_CA_BUNDLE restic --no-cache "$@"; }
s3cmd() { command s3cmd -c "$WORK/s3cfg" "$@"; }

# ---- aws CLI ------------------------------------------------------------------

awscli_mb() {
    aws s3 mb s3://cli-bucket
    aws s3api head-bucket --bucket cli-bucket
    aws s3 ls >buckets
    grep -q ' cli-bucket$' buckets || fail "s3 ls does not list cli-bucket: $(cat buckets)"
}
awscli_cp_small() {
    make_file small.txt 5000
    aws s3 cp small.txt s3://cli-bucket/docs/small.txt
    aws s3 cp s3://cli-bucket/docs/small.txt small.back
    same_file small.txt small.back
    aws s3api head-object --bucket cli-bucket --key docs/small.txt \
        --query ContentLength --output text >length
    expect_eq "ContentLength" 5000 "$(cat length)"
}
awscli_cp_multipart() {
    make_file big.bin $((100 * 1024 * 1024))
    aws s3 cp big.bin s3://cli-bucket/big/big.bin
    aws s3api head-object --bucket cli-bucket --key big/big.bin \
        --query '[ContentLength, ETag]' --output text >head.txt
    read -r length etag <head.txt
    expect_eq "ContentLength" $((100 * 1024 * 1024)) "$length"
    # 8 MiB parts by default: a multipart ETag ends in -13.
    [[ $etag == *-13\" ]] || fail "ETag $etag is not that of a 13-part upload"
    aws s3 cp s3://cli-bucket/big/big.bin big.back
    same_file big.bin big.back
    rm -f big.back
}
awscli_ls() {
    aws s3 ls s3://cli-bucket/ >top
    expect_eq "ls s3://cli-bucket/" "$(printf '%s\n' "PRE big/" "PRE docs/")" "$(awk '{print $1, $2}' top)"
    aws s3 ls s3://cli-bucket/docs/ >docs
    [[ $(awk '{print $3, $4}' docs) == "5000 small.txt" ]] || fail "ls docs/: $(cat docs)"
    aws s3 ls --recursive s3://cli-bucket >all
    expect_eq "ls --recursive" "$(printf '%s\n' "104857600 big/big.bin" "5000 docs/small.txt")" \
        "$(awk '{print $3, $4}' all)"
}
awscli_sync() {
    make_tree tree
    aws s3 sync --no-progress tree s3://cli-bucket/tree >first
    expect_eq "uploads of the first sync" 7 "$(grep -c '^upload:' first)"
    aws s3 ls --recursive s3://cli-bucket/tree/ >listing
    expect_eq "keys after sync" "$(tree_files tree | sed 's|^|tree/|')" \
        "$(awk '{ $1=$2=$3=""; sub(/^ +/, ""); print }' listing)"
    aws s3 sync --no-progress tree s3://cli-bucket/tree >second
    [[ ! -s second ]] || fail "second sync transferred: $(cat second)"
    aws s3 sync --no-progress s3://cli-bucket/tree tree.back >down
    diff -r tree tree.back || fail "sync down differs from the source tree"
}
awscli_mv() {
    aws s3 mv s3://cli-bucket/docs/small.txt s3://cli-bucket/moved/small.txt
    if aws s3api head-object --bucket cli-bucket --key docs/small.txt >head.txt 2>&1; then
        fail "docs/small.txt still exists after mv"
    fi
    grep -q 404 head.txt || fail "head-object of the moved key: $(cat head.txt)"
    aws s3 cp s3://cli-bucket/moved/small.txt moved.back
    same_file small.txt moved.back
}
awscli_rm_recursive() {
    aws s3 rm --recursive s3://cli-bucket/tree >removed
    expect_eq "deletions" 7 "$(grep -c '^delete:' removed)"
    aws s3 ls --recursive s3://cli-bucket/ >rest
    expect_eq "keys left" "$(printf '%s\n' big/big.bin moved/small.txt)" "$(awk '{print $4}' rest)"
    aws s3 rm --recursive s3://cli-bucket
    aws s3 rb s3://cli-bucket
    aws s3 ls >buckets
    ! grep -q ' cli-bucket$' buckets || fail "cli-bucket still listed"
}
awscli_if_none_match() {
    aws s3 mb s3://cli-cond
    make_file first 100
    make_file second 200
    aws s3api put-object --bucket cli-cond --key k --body first --if-none-match '*' >/dev/null
    if aws s3api put-object --bucket cli-cond --key k --body second --if-none-match '*' >out 2>&1; then
        fail "overwrite with If-None-Match: * succeeded"
    fi
    grep -q 'PreconditionFailed' out || fail "expected PreconditionFailed: $(cat out)"
    aws s3 cp s3://cli-cond/k k.back
    same_file first k.back
    aws s3 rm s3://cli-cond/k
    aws s3 rb s3://cli-cond
}

# An empty file first, then others, one request at a time on one
# connection: the CLI's vendored botocore misreads the answer after an
# empty PUT's unless the gateway closed that connection (it would wait
# out its read timeout, here 5 s, and fail without retries).
awscli_empty_file_first() {
    aws s3 mb s3://cli-empties
    mkdir -p empties
    make_file empties/0_empty 0
    make_file empties/1_small 100
    make_file empties/2_small 200
    printf '[default]\ns3 =\n  max_concurrent_requests = 1\n' >serial-config
    AWS_CONFIG_FILE=$PWD/serial-config aws --cli-read-timeout 5 --debug \
        s3 cp --recursive empties s3://cli-empties/ >copied 2>debug.log ||
        fail "cp of a tree starting with an empty file: $(tail -n 5 debug.log)"
    ! grep -q 'unparsed data' debug.log || fail "the CLI misread an answer: $(grep -m1 'unparsed data' debug.log)"
    aws s3 ls s3://cli-empties/ >listing
    expect_eq "sizes" "$(printf '%s\n' "0 0_empty" "100 1_small" "200 2_small")" "$(awk '{print $3, $4}' listing)"
    aws s3 rm --recursive s3://cli-empties >/dev/null
    aws s3 rb s3://cli-empties
}

# A second key, allowed to read and write one bucket only.
arbor_admin() { env ARBOR_ACCESS_KEY="$ACCESS_KEY" ARBOR_SECRET_KEY="$SECRET_KEY" \
    "$ARBOR_BIN" admin --endpoint "$ENDPOINT" "$@"; }
json_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
restricted_key() { # restricted_key NAME BUCKET: sets KEY_ID and KEY_SECRET
    arbor_admin key create "$1" >key.json
    KEY_ID=$(json_field key.json access_key)
    KEY_SECRET=$(json_field key.json secret_key)
    arbor_admin key allow "$KEY_ID" --bucket "$2" --read --write >/dev/null
}
awscli_restricted_key() {
    aws s3 mb s3://cli-allowed
    aws s3 mb s3://cli-forbidden
    restricted_key cli-app cli-allowed
    as_key() { AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$KEY_SECRET aws "$@"; }
    make_file f 3000
    as_key s3 cp f s3://cli-allowed/dir/f
    as_key s3 cp s3://cli-allowed/dir/f f.back
    same_file f f.back
    as_key s3 ls s3://cli-allowed/dir/ >listing
    grep -q ' f$' listing || fail "ls: $(cat listing)"
    as_key s3 ls >buckets
    expect_eq "buckets the key sees" cli-allowed "$(awk '{print $3}' buckets)"
    for refused in "s3 cp f s3://cli-forbidden/f" "s3 ls s3://cli-forbidden/" \
        "s3 mb s3://cli-mine" "s3 rb s3://cli-allowed" "s3 cp s3://cli-allowed/dir/f s3://cli-forbidden/g"; do
        # shellcheck disable=SC2086
        if as_key $refused >out 2>&1; then fail "$refused succeeded"; fi
        grep -q 'AccessDenied' out || fail "$refused: $(cat out)"
    done
    as_key s3 rm s3://cli-allowed/dir/f
    aws s3 rb s3://cli-allowed
    aws s3 rb s3://cli-forbidden
}
# A bucket whose policy lets anyone read one prefix: plain curl reads it.
awscli_public_curl() {
    aws s3 mb s3://cli-public
    make_file page.html 2000
    aws s3 cp page.html s3://cli-public/www/page.html
    aws s3 cp page.html s3://cli-public/hidden/page.html
    aws s3api put-bucket-policy --bucket cli-public --policy \
        '{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::cli-public/www/*"}]}'
    curl -sS --fail -o page.back "$ENDPOINT/cli-public/www/page.html"
    same_file page.html page.back
    code=$(curl -sS -o denied.xml -w '%{http_code}' "$ENDPOINT/cli-public/hidden/page.html")
    expect_eq "anonymous GET outside the policy" 403 "$code"
    grep -q '<Code>AccessDenied</Code>' denied.xml || fail "$(cat denied.xml)"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT --data-binary @page.html \
        "$ENDPOINT/cli-public/www/new.html")
    expect_eq "anonymous PUT" 403 "$code"
    aws s3 rm --recursive s3://cli-public/
    aws s3 rb s3://cli-public
}
# Canned ACLs: an object uploaded public-read is read by plain curl, until
# its ACL is made private; a public-read bucket is listed by curl, until the
# public access block says to ignore public ACLs.
awscli_acl_curl() {
    aws s3 mb s3://cli-acl
    make_file acl.bin 3000
    aws s3 cp --acl public-read acl.bin s3://cli-acl/pub.bin
    aws s3 cp acl.bin s3://cli-acl/priv.bin
    curl -sS --fail -o acl.back "$ENDPOINT/cli-acl/pub.bin"
    same_file acl.bin acl.back
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$ENDPOINT/cli-acl/priv.bin")
    expect_eq "anonymous GET of a private object" 403 "$code"
    aws s3api get-object-acl --bucket cli-acl --key pub.bin --output text \
        --query 'Grants[?Grantee.URI==`http://acs.amazonaws.com/groups/global/AllUsers`].Permission' >grants
    expect_eq "the object's public grant" READ "$(cat grants)"
    aws s3api put-object-acl --bucket cli-acl --key pub.bin --acl private
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$ENDPOINT/cli-acl/pub.bin")
    expect_eq "anonymous GET once private" 403 "$code"
    aws s3api put-bucket-acl --bucket cli-acl --acl public-read
    curl -sS --fail -o listing.xml "$ENDPOINT/cli-acl?list-type=2"
    grep -q '<Key>priv.bin</Key>' listing.xml || fail "listing: $(cat listing.xml)"
    aws s3api put-public-access-block --bucket cli-acl \
        --public-access-block-configuration IgnorePublicAcls=true
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$ENDPOINT/cli-acl?list-type=2")
    expect_eq "anonymous listing with public ACLs ignored" 403 "$code"
    aws s3 rm --recursive s3://cli-acl/
    aws s3 rb s3://cli-acl
}

# ---- boto3 ----------------------------------------------------------------------

boto3_step() { python3 "$CLIENTS_DIR/boto3_suite.py" "$1"; }
boto3_transfer() { boto3_step transfer; }
boto3_paginate() { boto3_step paginate; }
boto3_delete_objects() { boto3_step delete_objects; }
boto3_presign() { boto3_step presign; }

# aws s3api's Object Lock commands: a bucket created locked, its default
# retention, a version's retention (made COMPLIANCE, with the bypass) and
# legal hold, and a delete refused.
awscli_object_lock() {
    aws s3api create-bucket --bucket cli-locked --object-lock-enabled-for-bucket >/dev/null
    aws s3api get-bucket-versioning --bucket cli-locked --query Status --output text >status
    expect_eq "versioning of a locked bucket" Enabled "$(cat status)"
    aws s3api put-object-lock-configuration --bucket cli-locked --object-lock-configuration \
        'ObjectLockEnabled=Enabled,Rule={DefaultRetention={Mode=GOVERNANCE,Days=1}}'
    aws s3api get-object-lock-configuration --bucket cli-locked \
        --query 'ObjectLockConfiguration.Rule.DefaultRetention.[Mode,Days]' --output text >rule
    expect_eq "default retention" "GOVERNANCE	1" "$(cat rule)"
    make_file locked.bin 3000
    aws s3api put-object --bucket cli-locked --key k --body locked.bin \
        --query VersionId --output text >id
    aws s3api get-object-retention --bucket cli-locked --key k --version-id "$(cat id)" \
        --query Retention.Mode --output text >mode
    expect_eq "retention from the default" GOVERNANCE "$(cat mode)"
    # GOVERNANCE becomes COMPLIANCE only with the bypass, as in S3.
    local until
    until=$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%SZ)
    if aws s3api put-object-retention --bucket cli-locked --key k --version-id "$(cat id)" \
        --retention "Mode=COMPLIANCE,RetainUntilDate=$until" 2>err; then
        fail "GOVERNANCE became COMPLIANCE without the bypass"
    fi
    grep -q AccessDenied err || fail "GOVERNANCE to COMPLIANCE: $(cat err)"
    aws s3api put-object-retention --bucket cli-locked --key k --version-id "$(cat id)" \
        --retention "Mode=COMPLIANCE,RetainUntilDate=$until" --bypass-governance-retention
    if aws s3api delete-object --bucket cli-locked --key k --version-id "$(cat id)" \
        --bypass-governance-retention 2>err; then
        fail "a COMPLIANCE version was deleted"
    fi
    grep -q AccessDenied err || fail "delete of a COMPLIANCE version: $(cat err)"
    aws s3api put-object-legal-hold --bucket cli-locked --key k --version-id "$(cat id)" \
        --legal-hold Status=ON
    aws s3api get-object-legal-hold --bucket cli-locked --key k --version-id "$(cat id)" \
        --query LegalHold.Status --output text >hold
    expect_eq "legal hold" ON "$(cat hold)"
    aws s3 cp s3://cli-locked/k back.bin
    same_file locked.bin back.bin
}

# ---- rclone -----------------------------------------------------------------------

rclone_copy() {
    make_tree tree
    rclone mkdir arbor:rclone-bucket
    rclone copy tree arbor:rclone-bucket/tree
    rclone lsf -R --files-only arbor:rclone-bucket/tree >listing
    expect_eq "lsf -R after copy" "$(tree_files tree)" "$(LC_ALL=C sort listing)"
    rclone check tree arbor:rclone-bucket/tree
    rclone copy arbor:rclone-bucket/tree tree.back
    diff -r tree tree.back || fail "copy back differs"
}
# Multipart by rclone: parts of 5 MiB from 5 MiB on; md5 kept in metadata.
rclone_multipart() {
    make_file big/big.bin $((23 * 1024 * 1024))
    rclone copy --s3-upload-cutoff 5M --s3-chunk-size 5M big arbor:rclone-bucket/big
    rclone check big arbor:rclone-bucket/big
    rclone copy arbor:rclone-bucket/big big.back
    same_file big/big.bin big.back/big.bin
}
rclone_sync() {
    rm -r tree/a/b/c
    make_file tree/new/six.txt 66
    make_file tree/top.txt 2000
    rclone sync tree arbor:rclone-bucket/tree
    rclone check tree arbor:rclone-bucket/tree
    rclone lsf -R --files-only arbor:rclone-bucket/tree >listing
    expect_eq "lsf -R after sync" "$(tree_files tree)" "$(LC_ALL=C sort listing)"
    rclone sync -v tree arbor:rclone-bucket/tree 2>second
    ! grep -qE 'Copied|Deleted' second || fail "second sync changed something: $(cat second)"
}
rclone_fast_list() {
    rclone lsf -R --fast-list --files-only arbor:rclone-bucket/tree >listing
    expect_eq "lsf -R --fast-list" "$(tree_files tree)" "$(LC_ALL=C sort listing)"
    make_file tree/a/seven.txt 77
    rm tree/z/five.bin
    rclone sync --fast-list tree arbor:rclone-bucket/tree
    rclone check --fast-list tree arbor:rclone-bucket/tree
    rclone lsf -R --fast-list --files-only arbor:rclone-bucket/tree >listing
    expect_eq "lsf -R --fast-list after sync" "$(tree_files tree)" "$(LC_ALL=C sort listing)"
}
# rclone 1.60 has no --s3-directory-markers. Another client's `dir/` marker
# (a zero-byte key ending in /) must show as a directory where rclone lists
# with a delimiter (Arbor returns it as a CommonPrefix), never as a file;
# rclone 1.60 skips markers in recursive listings, so -R shows only files.
rclone_directory_markers() {
    aws s3api put-object --bucket rclone-bucket --key tree/marked/ >/dev/null
    aws s3api put-object --bucket rclone-bucket --key tree/a/marked-too/ >/dev/null
    rclone lsf arbor:rclone-bucket/tree >top
    expect_eq "lsf tree" "$(printf '%s\n' a/ empty marked/ new/ 'space name/' top.txt)" \
        "$(LC_ALL=C sort top)"
    rclone lsf arbor:rclone-bucket/tree/a >a
    expect_eq "lsf tree/a" "$(printf '%s\n' b/ marked-too/ one.bin seven.txt)" "$(LC_ALL=C sort a)"
    rclone lsf arbor:rclone-bucket/tree/marked >marked
    [[ ! -s marked ]] || fail "lsf of the marked directory: $(cat marked)"
    for flag in "" --fast-list; do
        rclone lsf -R --files-only $flag arbor:rclone-bucket/tree >files
        expect_eq "files with markers ($flag)" "$(tree_files tree)" "$(LC_ALL=C sort files)"
    done
    rclone check tree arbor:rclone-bucket/tree
    rclone check --fast-list tree arbor:rclone-bucket/tree
}
rclone_purge() {
    rclone purge arbor:rclone-bucket/tree
    # rclone 1.60 does not see, so does not delete, the markers of
    # rclone_directory_markers (as on AWS); all else is gone.
    aws s3api list-objects-v2 --bucket rclone-bucket --prefix tree/ \
        --query 'Contents[].Key' --output text >left
    expect_eq "keys left under tree/ after purge" "tree/a/marked-too/	tree/marked/" "$(cat left)"
    aws s3 rm --recursive s3://rclone-bucket/tree/
    rclone purge arbor:rclone-bucket
    aws s3 ls >buckets
    ! grep -q ' rclone-bucket$' buckets || fail "rclone-bucket still listed after purge"
}
rclone_restricted_key() {
    rclone mkdir arbor:rclone-allowed
    rclone mkdir arbor:rclone-forbidden
    restricted_key rclone-app rclone-allowed
    as_key() { RCLONE_CONFIG_ARBOR_ACCESS_KEY_ID=$KEY_ID \
        RCLONE_CONFIG_ARBOR_SECRET_ACCESS_KEY=$KEY_SECRET rclone --s3-no-check-bucket "$@"; }
    make_tree tree
    as_key copy tree arbor:rclone-allowed/tree
    as_key check tree arbor:rclone-allowed/tree
    as_key lsf -R --files-only arbor:rclone-allowed/tree >listing
    expect_eq "lsf -R as the key" "$(tree_files tree)" "$(LC_ALL=C sort listing)"
    if as_key copy tree arbor:rclone-forbidden/tree 2>out; then fail "copy to another bucket"; fi
    grep -q 'AccessDenied' out || fail "copy: $(cat out)"
    if as_key lsf arbor:rclone-forbidden 2>out; then fail "listing another bucket"; fi
    grep -q 'AccessDenied' out || fail "lsf: $(cat out)"
    as_key purge arbor:rclone-allowed/tree
    rclone rmdir arbor:rclone-allowed
    rclone rmdir arbor:rclone-forbidden
}

# A bucket with Object Lock (so versioning) and a default GOVERNANCE
# retention of a day: what immutable backups use.
locked_bucket() { # locked_bucket NAME
    aws s3api create-bucket --bucket "$1" --object-lock-enabled-for-bucket >/dev/null
    aws s3api put-object-lock-configuration --bucket "$1" --object-lock-configuration \
        'ObjectLockEnabled=Enabled,Rule={DefaultRetention={Mode=GOVERNANCE,Days=1}}'
}

# rclone against a versioned, object-locked bucket: an overwrite keeps the
# old version, a delete leaves a delete marker, and rclone sees only the
# current versions.
rclone_versioned() {
    locked_bucket rclone-versioned
    make_tree vtree
    rclone copy vtree arbor:rclone-versioned/tree
    make_file vtree/top.txt 2000
    rm vtree/z/five.bin
    rclone sync vtree arbor:rclone-versioned/tree
    rclone check vtree arbor:rclone-versioned/tree
    aws s3api list-object-versions --bucket rclone-versioned --prefix tree/top.txt \
        --query 'length(Versions)' --output text >versions
    expect_eq "versions of top.txt" 2 "$(cat versions)"
    aws s3api list-object-versions --bucket rclone-versioned \
        --query 'DeleteMarkers[].Key' --output text >markers
    expect_eq "delete markers" "tree/z/five.bin" "$(cat markers)"
    # The deleted file's bytes are still there under its version id.
    aws s3api list-object-versions --bucket rclone-versioned --prefix tree/z/five.bin \
        --query 'Versions[0].VersionId' --output text >id
    aws s3api get-object --bucket rclone-versioned --key tree/z/five.bin \
        --version-id "$(cat id)" five.back >/dev/null
    expect_eq "size of the deleted version" 1234567 "$(stat -c %s five.back)"
}

# ---- restic -------------------------------------------------------------------------

snapshot_count() { restic snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
restic_init() {
    restic init # creates the bucket
    make_tree src
    make_file src/big/blob.bin $((12 * 1024 * 1024))
}
restic_backup() {
    restic backup src
    expect_eq "snapshots" 1 "$(snapshot_count)"
}
restic_check() { restic check --read-data; }
restic_restore() {
    rm -rf restored
    restic restore latest --target restored
    diff -r src restored/src || fail "restored tree differs from the source"
}
restic_forget_prune() {
    make_file src/a/eight.bin 50000
    rm src/z/five.bin
    restic backup src
    expect_eq "snapshots" 2 "$(snapshot_count)"
    restic forget --keep-last 1 --prune
    expect_eq "snapshots after forget" 1 "$(snapshot_count)"
    restic check --read-data
    rm -rf restored
    restic restore latest --target restored
    diff -r src restored/src || fail "restored tree differs from the source"
}

# A restic repository in a versioned, object-locked bucket: prune's
# deletes leave delete markers, and the repository stays whole.
restic_versioned() {
    locked_bucket restic-versioned
    export RESTIC_REPOSITORY=s3:$ENDPOINT/restic-versioned/repo
    restic init
    restic backup src
    make_file src/a/nine.bin 70000
    restic backup src
    restic forget --keep-last 1 --prune
    expect_eq "snapshots after forget" 1 "$(snapshot_count)"
    restic check --read-data
    rm -rf restored
    restic restore latest --target restored
    diff -r src restored/src || fail "restored tree differs from the source"
    aws s3api list-object-versions --bucket restic-versioned \
        --query 'length(DeleteMarkers)' --output text >markers
    (($(cat markers) > 0)) || fail "prune left no delete marker"
    # The data prune deleted is still there, and no delete by version id
    # gets past the retention without the bypass.
    aws s3api list-object-versions --bucket restic-versioned --prefix repo/data/ \
        --query 'Versions[?IsLatest==`false`] | [0].[Key,VersionId]' --output text >old
    read -r key id <old
    [[ $key == repo/data/* ]] || fail "no noncurrent data version: $(cat old)"
    if aws s3api delete-object --bucket restic-versioned --key "$key" --version-id "$id" 2>err; then
        fail "a retained version was deleted"
    fi
    grep -q AccessDenied err || fail "delete of a retained version: $(cat err)"
}

# ---- s3cmd -----------------------------------------------------------------------------

s3cmd_put_get() {
    s3cmd mb s3://s3cmd-bucket
    make_file small.txt 3000
    make_file big.bin $((20 * 1024 * 1024)) # multipart from 15 MiB on
    s3cmd put small.txt s3://s3cmd-bucket/docs/small.txt
    s3cmd put big.bin s3://s3cmd-bucket/big.bin
    s3cmd get s3://s3cmd-bucket/docs/small.txt small.back
    s3cmd get s3://s3cmd-bucket/big.bin big.back
    same_file small.txt small.back
    same_file big.bin big.back
}
s3cmd_ls() {
    s3cmd ls >buckets
    grep -q 's3://s3cmd-bucket$' buckets || fail "s3cmd ls: $(cat buckets)"
    s3cmd ls s3://s3cmd-bucket/ >top
    expect_eq "ls top level" "$(printf '%s\n' "DIR s3://s3cmd-bucket/docs/" "$((20 * 1024 * 1024)) s3://s3cmd-bucket/big.bin")" \
        "$(awk '$1 == "DIR" {print $1, $2; next} {print $3, $4}' top)"
    s3cmd ls --recursive s3://s3cmd-bucket >all
    expect_eq "ls --recursive" "$(printf '%s\n' "$((20 * 1024 * 1024)) s3://s3cmd-bucket/big.bin" "3000 s3://s3cmd-bucket/docs/small.txt")" \
        "$(awk '{print $3, $4}' all)"
}
s3cmd_sync() {
    make_tree tree
    s3cmd sync tree/ s3://s3cmd-bucket/tree/
    s3cmd ls --recursive s3://s3cmd-bucket/tree/ >listing
    expect_eq "keys after sync" "$(tree_files tree | sed 's|^|s3://s3cmd-bucket/tree/|')" \
        "$(awk '{ $1=$2=$3=""; sub(/^ +/, ""); print }' listing)"
    s3cmd sync tree/ s3://s3cmd-bucket/tree/ >second
    ! grep -q 'upload:' second || fail "second sync uploaded: $(cat second)"
    s3cmd sync s3://s3cmd-bucket/tree/ tree.back/
    diff -r tree tree.back || fail "sync down differs from the source tree"
}
# s3cmd's own ACL commands: put --acl-public, setacl (which reads the ACL
# and sends it back changed, as an AccessControlPolicy body), info.
s3cmd_acl() {
    s3cmd mb s3://s3cmd-acl
    make_file pub.txt 1000
    s3cmd put --acl-public pub.txt s3://s3cmd-acl/pub.txt
    curl -sS --fail -o pub.back "$ENDPOINT/s3cmd-acl/pub.txt"
    same_file pub.txt pub.back
    s3cmd setacl --acl-private s3://s3cmd-acl/pub.txt
    code=$(curl -sS -o /dev/null -w '%{http_code}' "$ENDPOINT/s3cmd-acl/pub.txt")
    expect_eq "anonymous GET once private" 403 "$code"
    s3cmd setacl --acl-public s3://s3cmd-acl/pub.txt
    curl -sS --fail -o pub.back "$ENDPOINT/s3cmd-acl/pub.txt"
    s3cmd info s3://s3cmd-acl/pub.txt >info
    grep -q 'anon.*READ' info || fail "info: $(cat info)"
    s3cmd del s3://s3cmd-acl/pub.txt
    s3cmd rb s3://s3cmd-acl
}
s3cmd_del() {
    s3cmd del s3://s3cmd-bucket/docs/small.txt
    s3cmd del --recursive --force s3://s3cmd-bucket/tree/
    s3cmd ls --recursive s3://s3cmd-bucket >rest
    expect_eq "keys left" "s3://s3cmd-bucket/big.bin" "$(awk '{print $4}' rest)"
    s3cmd del s3://s3cmd-bucket/big.bin
    s3cmd rb s3://s3cmd-bucket
    s3cmd ls >buckets
    ! grep -q 's3://s3cmd-bucket$' buckets || fail "s3cmd-bucket still listed"
}

# Each client's steps, in order (read through `declare -n` below).
# shellcheck disable=SC2034
{
    STEPS_awscli=(awscli_mb awscli_cp_small awscli_cp_multipart awscli_ls awscli_sync awscli_mv
        awscli_rm_recursive awscli_if_none_match awscli_empty_file_first awscli_object_lock awscli_restricted_key
        awscli_public_curl awscli_acl_curl)
    STEPS_boto3=(boto3_transfer boto3_paginate boto3_delete_objects boto3_presign)
    STEPS_rclone=(rclone_copy rclone_multipart rclone_sync rclone_fast_list rclone_directory_markers
        rclone_purge rclone_versioned rclone_restricted_key)
    STEPS_restic=(restic_init restic_backup restic_check restic_restore restic_forget_prune
        restic_versioned)
    STEPS_s3cmd=(s3cmd_put_get s3cmd_ls s3cmd_sync s3cmd_acl s3cmd_del)
}

# ---- runner -------------------------------------------------------------------------------

PASSED=0
FAILED=0
FAILED_STEPS=()
EXPECTED_STEPS=()

record_fail() {
    FAILED=$((FAILED + 1))
    FAILED_STEPS+=("$1")
}

run_step() { # run_step CLIENT STEP
    local client=$1 step=$2 log=$WORK/logs/$2.log rc start=$SECONDS
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "FAIL $step (arbor is not running)"
        record_fail "$step"
        return
    fi
    set +e
    (cd "$WORK/$client" && timeout -k 10 "$STEP_TIMEOUT" \
        bash -c "set -euo pipefail; PS4='+ \$(date +%T.%3N) '; set -x; $step") \
        >"$log" 2>&1
    rc=$?
    set -e
    local took="($((SECONDS - start))s)"
    local expected=${EXPECTED_FAILURES[$step]:-}
    if ((rc == 0)) && [[ -z $expected ]]; then
        echo "ok   $step $took"
        PASSED=$((PASSED + 1))
    elif ((rc == 0)); then
        echo "FAIL $step $took: passed, but is listed as an expected failure ($expected)"
        record_fail "$step"
    else
        if ((rc == 124 || rc == 137)); then
            echo "step timed out after ${STEP_TIMEOUT}s" >>"$log"
        fi
        if [[ -n $expected ]]; then
            echo "xfail $step $took: $expected"
            EXPECTED_STEPS+=("$step")
        else
            echo "FAIL $step $took (exit $rc); last lines of its output:"
            record_fail "$step"
        fi
        tail -n 25 "$log" | sed 's/^/    | /'
    fi
}

start_server
echo "arbor $("$ARBOR_BIN" --version 2>/dev/null || true) at $ENDPOINT, work dir $WORK"
export ENDPOINT HOSTPORT ACCESS_KEY SECRET_KEY WORK CLIENTS_DIR PATH ARBOR_BIN
export AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE=$WORK/home/aws-config AWS_SHARED_CREDENTIALS_FILE=$WORK/home/aws-credentials
# No retries: a stalled or refused request must fail its step, not be
# hidden by a second attempt.
export AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard
# The aws CLI 1.46 vendors botocore 1.43.62, which after a zero-length PUT
# (answered without "100 Continue") reuses the stale status line for the
# next Expect: 100-continue request on that connection (botocore issue
# 3755, fixed in 1.43.77). The gateway closes the connection after such
# an answer, so the suite runs the CLI as users do, without the opt-in
# BOTO_EXPERIMENTAL__NO_EMPTY_CONTINUE (awscli_empty_file_first).
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN
export RCLONE_CONFIG_ARBOR_TYPE=s3 RCLONE_CONFIG_ARBOR_PROVIDER=Other
export RCLONE_CONFIG_ARBOR_ENDPOINT=$ENDPOINT RCLONE_CONFIG_ARBOR_REGION=us-east-1
export RCLONE_CONFIG_ARBOR_ACCESS_KEY_ID=$ACCESS_KEY RCLONE_CONFIG_ARBOR_SECRET_ACCESS_KEY=$SECRET_KEY
export RCLONE_CONFIG_ARBOR_FORCE_PATH_STYLE=true
: >"$WORK/rclone.conf"
export RESTIC_REPOSITORY=s3:$ENDPOINT/restic-bucket/repo RESTIC_PASSWORD=arbor-client-suite
cat >"$WORK/s3cfg" <<EOF
[default]
access_key = $ACCESS_KEY
secret_key = $SECRET_KEY
host_base = $HOSTPORT
host_bucket = $HOSTPORT
use_https = False
signature_v2 = False
bucket_location = us-east-1
check_ssl_certificate = False
max_retries = 0
EOF
# shellcheck disable=SC2046
export -f $(declare -F | awk '{print $3}')

# What each client's steps run, beyond coreutils.
declare -A NEEDS=([awscli]="aws curl python3" [boto3]=python3 [rclone]="rclone aws python3" [restic]="restic python3"
    [s3cmd]="s3cmd curl")
for client in "${CLIENTS[@]}"; do
    echo "== $client"
    missing=()
    for tool in ${NEEDS[$client]}; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    if [[ $client == boto3 ]] && ! python3 -c 'import boto3, requests' 2>/dev/null; then
        missing+=("boto3 or requests")
    fi
    if ((${#missing[@]} > 0)); then
        echo "FAIL $client: ${missing[*]} not installed (compat-tests/clients/install.sh)"
        record_fail "$client"
        continue
    fi
    mkdir -p "$WORK/$client"
    declare -n steps="STEPS_$client"
    for step in "${steps[@]}"; do
        run_step "$client" "$step"
    done
    unset -n steps
    rm -rf "${WORK:?}/$client" # large files go as soon as a client is done
done

echo "== shutdown"
if stop_server; then
    echo "ok   arbor stops cleanly on SIGTERM"
    PASSED=$((PASSED + 1))
else
    echo "FAIL arbor stops cleanly on SIGTERM"
    record_fail shutdown
fi
# s3s logs the client's mistakes as errors: not ours. Errors of our own are
# shown (a failed step says more); a panic is a failure by itself.
if grep -E '(ERROR|panicked)' "$WORK/server.log" | grep -qv 's3s::'; then
    echo "arbor logged errors:"
    grep -E '(ERROR|panicked)' "$WORK/server.log" | grep -v 's3s::' | head -n 20 | cut -c1-400 |
        sed 's/^/    | /'
fi
if grep -q 'panicked' "$WORK/server.log"; then
    echo "FAIL arbor panicked"
    record_fail panic
fi

((${#EXPECTED_STEPS[@]} == 0)) || echo "expected failures (Arbor defects): ${EXPECTED_STEPS[*]}"
((${#FAILED_STEPS[@]} == 0)) || echo "failed: ${FAILED_STEPS[*]}"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
