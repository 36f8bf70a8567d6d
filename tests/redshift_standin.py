#!/usr/bin/env python3
"""A stand-in for the Amazon Redshift Data API, at its wire level.

It speaks the JSON 1.1 protocol the AWS SDKs speak (`X-Amz-Target:
RedshiftData.<Operation>`) and runs the statements on a local PostgreSQL,
one database per `Database` parameter. moto's redshift-data answers
ExecuteStatement with canned rows and BatchExecuteStatement with an HTTP
500 (moto 5.2.1), so it cannot test a loader; this can.

What it does as Redshift does:
  * BatchExecuteStatement runs its statements in order in one transaction;
    any failure rolls all back. ExecuteStatement runs one, with `:name`
    parameters.
  * ClientToken: a second call with a token already seen returns the first
    call's statement id and runs nothing.
  * Statements go SUBMITTED -> STARTED -> FINISHED | FAILED, in a thread of
    their own; a per-cluster delay (POST /_standin/delay) holds them in
    STARTED before it commits, so a load can outlive a tick for real.
  * `COPY t [(cols)] FROM 's3://bucket/key' IAM_ROLE '...' [MANIFEST]
    FORMAT AS CSV ... | FORMAT AS JSON 'auto' [GZIP|ZSTD] | FORMAT AS
    PARQUET` (pyarrow reads it whole; columns by position) streams each
    listed object from S3 (the bucket's: S3LOADER_TEST_SEAWEEDFS, or
    S3LOADER_TEST_MOTO) into the table through
    PostgreSQL's COPY FROM STDIN. A rejected row fails the statement with
    Redshift's message, and its file, line, column and reason are kept in
    `sys_load_error_detail` (committed apart from the failed transaction,
    as Redshift keeps them); each file's lines go to `sys_load_detail`.
  * String literals read backslash as an escape (standard_conforming_strings
    off), as Redshift does; GETDATE() is now().
  * DescribeStatement reports sub-statements with their RedshiftQueryId;
    GetStatementResult pages its rows (NextToken), 50 at a time.

What it does not do: MAXERROR above 0 (the first rejected row fails the
COPY), jsonpaths files, Redshift's type coercions beyond PostgreSQL's
(TIMEFORMAT/DATEFORMAT are ignored), IAM (the role is not checked).

GET /_standin/stats?cluster=X returns what ran for that cluster:
{"copies": n, "batches": n, "statements": n, "token_hits": n}.
"""

import gzip
import io
import itertools
import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import boto3
import psycopg2
import zstandard

PG = os.environ["S3LOADER_TEST_PG"]
# Buckets are looked for on SeaweedFS, then on moto (which keeps a
# backslash in a key; SeaweedFS makes it a slash).
ENDPOINTS = [os.environ["S3LOADER_TEST_SEAWEEDFS"], os.environ.get("S3LOADER_TEST_MOTO")]
PAGE = 50

lock = threading.Lock()
statements = {}
tokens = {}
delays = {}
stats = {}
query_ids = itertools.count(1000)


def s3_at(endpoint):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )


class S3:
    """A client per bucket, on whichever S3 holds the bucket."""

    def __init__(self):
        self.clients = {}

    def __call__(self, bucket):
        if bucket not in self.clients:
            for endpoint in filter(None, ENDPOINTS):
                client = s3_at(endpoint)
                try:
                    client.head_bucket(Bucket=bucket)
                except Exception:
                    continue
                self.clients[bucket] = client
                break
            else:
                raise Rejected(("s3://" + bucket, 0, "", "The specified bucket does not exist"))
        return self.clients[bucket]


def pg(database):
    dsn = re.sub(r"dbname=\S+", "dbname=" + database, PG)
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SET standard_conforming_strings = off; SET escape_string_warning = off")
    conn.commit()
    return conn


def count(cluster, what, n=1):
    with lock:
        stats.setdefault(cluster, {"copies": 0, "batches": 0, "statements": 0, "token_hits": 0})
        stats[cluster][what] += n


class Rejected(Exception):
    """A COPY rejected a row: the statement fails as Redshift's does."""


# --- literals and COPY -------------------------------------------------------

def literal_at(sql, i):
    """Reads a Redshift string literal starting at sql[i] == "'"; returns
    (value, index after it)."""
    assert sql[i] == "'"
    out, i = [], i + 1
    while i < len(sql):
        c = sql[i]
        if c == "\\":
            out.append(sql[i + 1])
            i += 2
        elif c == "'" and sql[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        elif c == "'":
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise ValueError("unterminated literal")


COPY_HEAD = re.compile(r"\s*COPY\s+(\S+?)\s*(\(([^)]*)\))?\s+FROM\s+(?=')", re.I | re.S)


def parse_copy(sql):
    m = COPY_HEAD.match(sql)
    if not m:
        return None
    table, cols = m.group(1), m.group(3)
    source, i = literal_at(sql, m.end())
    rest = sql[i:]
    opts = {"format": "text", "manifest": False, "compression": None, "header": 0,
            "delimiter": "|", "quote": '"', "null": "\\N", "json": None}
    # Options: words, and words followed by a literal or a number.
    pos = 0
    words = []
    while pos < len(rest):
        ch = rest[pos]
        if ch.isspace():
            pos += 1
        elif ch == "'":
            v, pos = literal_at(rest, pos)
            words.append(("lit", v))
        else:
            w = re.match(r"[^\s']+", rest[pos:]).group(0)
            words.append(("word", w.upper()))
            pos += len(w)
    k = 0
    while k < len(words):
        kind, w = words[k]
        nxt = words[k + 1][1] if k + 1 < len(words) else None
        if w == "MANIFEST":
            opts["manifest"] = True
        elif w in ("GZIP", "ZSTD"):
            opts["compression"] = w
        elif w == "CSV":
            opts["format"] = "csv"
            opts["delimiter"] = ","
            opts["null"] = ""
        elif w == "PARQUET":
            opts["format"] = "parquet"
        elif w == "JSON":
            opts["format"] = "json"
            opts["json"] = nxt
            k += 1
        elif w in ("DELIMITER", "QUOTE", "NULL", "IGNOREHEADER", "MAXERROR", "IAM_ROLE",
                   "TIMEFORMAT", "DATEFORMAT"):
            if nxt == "AS":
                k += 1
                nxt = words[k + 1][1]
            key = {"IGNOREHEADER": "header"}.get(w, w.lower())
            opts[key] = nxt
            k += 1
        k += 1
    return table, cols, source, opts


def objects_of(client, source, manifest):
    bucket, key = source[len("s3://"):].split("/", 1)
    if manifest:
        body = client(bucket).get_object(Bucket=bucket, Key=key)["Body"].read()
        for e in json.loads(body)["entries"]:
            b, k = e["url"][len("s3://"):].split("/", 1)
            yield e["url"], b, k
    else:
        pages = client(bucket).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        for page in pages:
            for o in page.get("Contents", []):
                yield "s3://%s/%s" % (bucket, o["Key"]), bucket, o["Key"]


class Stream(io.RawIOBase):
    """A file-like object over an iterator of bytes, for COPY FROM STDIN."""

    def __init__(self, chunks):
        self.chunks, self.buf = chunks, b""

    def readable(self):
        return True

    def read(self, n=-1):
        while (n < 0 or len(self.buf) < n):
            try:
                self.buf += next(self.chunks)
            except StopIteration:
                break
        if n < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:n], self.buf[n:]
        return out


def lines(chunks):
    rest = b""
    for chunk in chunks:
        rest += chunk
        *whole, rest = rest.split(b"\n")
        yield from whole
    if rest:
        yield rest


def columns_of(cur, table):
    cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,))
    return [r[0] for r in cur.fetchall()]


def json_as_csv(body, columns, url):
    """JSON 'auto': each line's keys matched to the column names."""
    for n, line in enumerate(body, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise Rejected((url, n, "", "Invalid JSON: %s" % e))
        if not isinstance(obj, dict):
            raise Rejected((url, n, "", "Invalid JSON object"))
        out = io.StringIO()
        fields = []
        for c in columns:
            v = obj.get(c)
            if v is None:
                fields.append("")
            else:
                s = json.dumps(v) if isinstance(v, (dict, list)) else (
                    str(v).lower() if isinstance(v, bool) else str(v))
                fields.append('"' + s.replace('"', '""') + '"')
        out.write(",".join(fields) + "\n")
        yield out.getvalue().encode()


def parquet_as_csv(body, columns, url):
    """FORMAT AS PARQUET: the file's columns by position onto the table's,
    whose numbers must match; a file that cannot be read is rejected."""
    import pyarrow
    import pyarrow.csv
    import pyarrow.parquet
    try:
        table = pyarrow.parquet.read_table(io.BytesIO(body))
    except (pyarrow.ArrowException, OSError) as e:
        raise Rejected((url, 0, "", "Invalid Parquet file: %s" % e))
    if table.num_columns != len(columns):
        raise Rejected((url, 0, "", "Unmatched number of columns: the table has %d, the file %d"
                        % (len(columns), table.num_columns)))
    out = io.BytesIO()
    pyarrow.csv.write_csv(table.rename_columns(columns), out,
                          pyarrow.csv.WriteOptions(include_header=False))
    yield out.getvalue()


def run_copy(conn, cur, cluster, query_id, parsed):
    table, cols, source, o = parsed
    client = S3()
    columns = [c.strip().strip('"') for c in cols.split(",")] if cols else columns_of(cur, table)
    col_sql = "(%s)" % ", ".join('"%s"' % c.replace('"', '""') for c in columns)
    total = 0
    for url, bucket, key in objects_of(client, source, o["manifest"]):
        body = client(bucket).get_object(Bucket=bucket, Key=key)["Body"]
        if o["compression"] == "GZIP":
            raw = gzip.GzipFile(fileobj=body)
        elif o["compression"] == "ZSTD":
            raw = zstandard.ZstdDecompressor().stream_reader(body)
        else:
            raw = body
        chunks = iter(lambda: raw.read(65536), b"")
        header = int(o["header"] or 0)
        if o["format"] == "parquet":
            # Read before the COPY starts: an exception inside COPY's read()
            # would come out of psycopg2 as a cancelled COPY, not as the
            # file's rejection.
            stream = io.BytesIO(b"".join(parquet_as_csv(raw.read(), columns, url)))
            sql = "COPY %s %s FROM STDIN WITH (FORMAT csv)" % (table, col_sql)
        elif o["format"] == "json":
            stream = Stream(json_as_csv(lines(chunks), columns, url))
            sql = "COPY %s %s FROM STDIN WITH (FORMAT csv)" % (table, col_sql)
        else:
            stream = Stream(chunks)
            sql = "COPY %s %s FROM STDIN WITH (FORMAT %s, DELIMITER %s, QUOTE %s, NULL %s%s)" % (
                table, col_sql, "csv" if o["format"] == "csv" else "text",
                pglit(o["delimiter"]), pglit(o["quote"]), pglit(o["null"]),
                ", HEADER true" if header else "")
            if o["format"] != "csv":
                sql = sql.replace(", QUOTE %s" % pglit(o["quote"]), "")
        try:
            cur.copy_expert(sql, stream)
        except psycopg2.Error as e:
            # Only the data is the file's fault (SQLSTATE classes 22, data
            # exception, and 23, integrity constraint), as Redshift puts only
            # parse and data errors in sys_load_error_detail. A session cut
            # (a restart, a terminated backend: no SQLSTATE, 08, 57) fails
            # the statement with nothing to blame on a file.
            if not (e.pgcode or "").startswith(("22", "23")):
                raise
            ctx = (e.diag.context or "")
            line = re.search(r"line (\d+)", ctx)
            col = re.search(r"column (\w+)", ctx)
            lineno = int(line.group(1)) if line else 0
            raise Rejected((url, lineno, col.group(1) if col else "",
                            (e.diag.message_primary or str(e)).strip()))
        except Rejected:
            raise
        rows = cur.rowcount
        total += rows
        record(conn, "sys_load_detail", (query_id, url, rows))
    return total


def pglit(v):
    return "E'%s'" % v.replace("\\", "\\\\").replace("'", "\\'")


DDL = {
    "sys_load_error_detail": "CREATE TABLE IF NOT EXISTS sys_load_error_detail ("
    "query_id bigint, file_name text, line_number bigint, column_name text, error_message text)",
    "sys_load_detail": "CREATE TABLE IF NOT EXISTS sys_load_detail ("
    "query_id bigint, file_name text, lines_scanned bigint)",
}


def record(conn, table, values):
    """Writes a system-table row on a connection of its own, so it stays
    whether or not the load's transaction commits."""
    database = conn.info.dbname
    side = pg(database)
    try:
        side.autocommit = True
        with side.cursor() as cur:
            for attempt in range(5):
                try:
                    cur.execute(DDL[table])
                    break
                except psycopg2.Error:
                    time.sleep(0.05)
            cur.execute("INSERT INTO %s VALUES (%s)" % (table, ", ".join(["%s"] * len(values))), values)
    finally:
        side.close()


# --- statements ----------------------------------------------------------------

PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def run(stmt_id):
    st = statements[stmt_id]
    # Only batches (the loads) wait: lookups answer at once.
    delay = delays.get(st["cluster"], 0) if st["batch"] else 0
    with lock:
        st["Status"] = "STARTED"
        st["UpdatedAt"] = time.time()
    try:
        conn = pg(st["Database"])
    except psycopg2.Error as e:
        finish(st, "FAILED", str(e).strip(), None)
        return
    failed_at = None
    try:
        with conn.cursor() as cur:
            for i, sql in enumerate(st["sqls"]):
                failed_at = i
                sub = st["subs"][i]
                sub["Status"] = "STARTED"
                sql = re.sub(r"GETDATE\(\)", "now()", sql, flags=re.I)
                parsed = parse_copy(sql)
                if parsed:
                    count(st["cluster"], "copies")
                    sub["ResultRows"] = run_copy(conn, cur, st["cluster"], sub["RedshiftQueryId"], parsed)
                else:
                    params = {p["name"]: p["value"] for p in st.get("params", [])}
                    if params:
                        cur.execute(PARAM.sub(r"%(\1)s", sql.replace("%", "%%")), params)
                    else:
                        cur.execute(sql)
                    sub["ResultRows"] = max(cur.rowcount, 0)
                    if cur.description:
                        sub["columns"] = [d.name for d in cur.description]
                        sub["rows"] = cur.fetchall()
                        sub["HasResultSet"] = True
                sub["Status"] = "FINISHED"
            # The delay holds the statement (and its locks) before commit,
            # as a long COPY would.
            time.sleep(delay / 1000.0)
        conn.commit()
        finish(st, "FINISHED", None, None)
    except Rejected as r:
        rollback(conn)
        url, line, col, msg = r.args[0]
        record(conn, "sys_load_error_detail", (st["subs"][failed_at]["RedshiftQueryId"], url, line, col, msg))
        time.sleep(delay / 1000.0)
        finish(st, "FAILED", "ERROR: Load into table '%s' failed. Check 'sys_load_error_detail' "
               "system table for details." % parse_copy(st["sqls"][failed_at])[0], failed_at)
    except psycopg2.Error as e:
        rollback(conn)
        time.sleep(delay / 1000.0)
        finish(st, "FAILED", "ERROR: " + (e.diag.message_primary or str(e)).strip(), failed_at)
    except Exception as e:  # a bug here must fail the statement, not hang it
        rollback(conn)
        finish(st, "FAILED", "stand-in error: %r" % e, failed_at)
        raise
    finally:
        conn.close()


def rollback(conn):
    """Rolls back; a connection the server already closed (terminated,
    restarted) has nothing to roll back, and the statement must still end
    FAILED rather than stay STARTED for ever."""
    try:
        conn.rollback()
    except psycopg2.Error:
        pass


def finish(st, status, error, failed_at):
    with lock:
        st["Status"] = status
        st["Error"] = error
        st["UpdatedAt"] = time.time()
        if failed_at is not None:
            sub = st["subs"][failed_at]
            sub["Status"], sub["Error"] = "FAILED", error
            for later in st["subs"][failed_at + 1:]:
                later["Status"] = "ABORTED"


def submit(body, sqls):
    cluster = body.get("ClusterIdentifier") or body.get("WorkgroupName")
    if not cluster or not body.get("Database"):
        raise ApiError("ValidationException", "ClusterIdentifier or WorkgroupName, and Database, are required")
    token = body.get("ClientToken")
    with lock:
        if token and token in tokens:
            stats.setdefault(cluster, {"copies": 0, "batches": 0, "statements": 0, "token_hits": 0})
            stats[cluster]["token_hits"] += 1
            return statements[tokens[token]]
        stmt_id = str(uuid.uuid4())
        now = time.time()
        st = {
            "Id": stmt_id, "Status": "SUBMITTED", "CreatedAt": now, "UpdatedAt": now,
            "cluster": cluster, "Database": body["Database"], "sqls": sqls,
            "params": body.get("Parameters") or [], "Error": None,
            "subs": [{"Id": "%s:%d" % (stmt_id, i + 1), "Status": "SUBMITTED", "QueryString": s,
                      "RedshiftQueryId": next(query_ids), "ResultRows": -1, "HasResultSet": False}
                     for i, s in enumerate(sqls)],
            "ClusterIdentifier": body.get("ClusterIdentifier"),
            "WorkgroupName": body.get("WorkgroupName"),
            "batch": "Sqls" in body,
        }
        statements[stmt_id] = st
        if token:
            tokens[token] = stmt_id
    count(cluster, "batches" if len(sqls) > 1 or "Sqls" in body else "statements")
    threading.Thread(target=run, args=(stmt_id,), daemon=True).start()
    return st


class ApiError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def field(v):
    if v is None:
        return {"isNull": True}
    if isinstance(v, bool):
        return {"booleanValue": v}
    if isinstance(v, int):
        return {"longValue": v}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def describe(st):
    out = {k: st[k] for k in ("Id", "Status", "CreatedAt", "UpdatedAt", "Database")}
    if st["Error"]:
        out["Error"] = st["Error"]
    for k in ("ClusterIdentifier", "WorkgroupName"):
        if st.get(k):
            out[k] = st[k]
    if st["batch"]:
        out["SubStatements"] = [
            {k: s[k] for k in ("Id", "Status", "QueryString", "RedshiftQueryId", "ResultRows", "HasResultSet")}
            | ({"Error": s["Error"]} if s.get("Error") else {})
            for s in st["subs"]]
        out["HasResultSet"] = False
    else:
        s = st["subs"][0]
        out.update(QueryString=s["QueryString"], RedshiftQueryId=s["RedshiftQueryId"],
                   ResultRows=s["ResultRows"], HasResultSet=s["HasResultSet"])
    return out


def operation(op, body):
    if op == "ExecuteStatement":
        st = submit(body, [body["Sql"]])
        return {"Id": st["Id"], "CreatedAt": st["CreatedAt"], "Database": st["Database"]}
    if op == "BatchExecuteStatement":
        st = submit(body, body["Sqls"])
        return {"Id": st["Id"], "CreatedAt": st["CreatedAt"], "Database": st["Database"]}
    if op == "DescribeStatement":
        sid = body["Id"]
        st = statements.get(sid.split(":")[0])
        if not st:
            raise ApiError("ResourceNotFoundException", "Query does not exist.")
        with lock:
            return describe(st)
    if op == "GetStatementResult":
        sid = body["Id"]
        base, _, n = sid.partition(":")
        st = statements.get(base)
        if not st:
            raise ApiError("ResourceNotFoundException", "Query does not exist.")
        if st["Status"] != "FINISHED":
            raise ApiError("ValidationException", "Query does not have result. Please check query status with DescribeStatement.")
        sub = st["subs"][int(n) - 1 if n else 0]
        if not sub.get("HasResultSet"):
            raise ApiError("ValidationException", "Query does not have result.")
        start = int(body.get("NextToken") or 0)
        rows = sub["rows"]
        out = {
            "Records": [[field(v) for v in r] for r in rows[start:start + PAGE]],
            "ColumnMetadata": [{"name": c, "typeName": "varchar"} for c in sub["columns"]],
            "TotalNumRows": len(rows),
        }
        if start + PAGE < len(rows):
            out["NextToken"] = str(start + PAGE)
        return out
    if op == "CancelStatement":
        return {"Status": False}
    raise ApiError("UnknownOperationException", "the stand-in does not serve " + op)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if os.environ.get("STANDIN_LOG"):
            sys.stderr.write(fmt % args + "\n")

    def reply(self, status, payload, error=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        u = urlparse(self.path)
        if u.path == "/_standin/stats":
            cluster = parse_qs(u.query).get("cluster", [""])[0]
            with lock:
                self.reply(200, stats.get(cluster, {"copies": 0, "batches": 0, "statements": 0, "token_hits": 0}))
        else:
            self.reply(200, {"ok": True})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/_standin/delay":
            delays[body["cluster"]] = int(body["ms"])
            return self.reply(200, {"ok": True})
        target = self.headers.get("X-Amz-Target", "")
        op = target.split(".", 1)[-1]
        try:
            self.reply(200, operation(op, body))
        except ApiError as e:
            self.reply(e.status, {"__type": e.code, "message": e.message}, e.code)
        except Exception as e:  # a bug here must show, not hang the client
            self.reply(500, {"__type": "InternalServerException", "message": repr(e)}, "InternalServerException")


if __name__ == "__main__":
    port = int(sys.argv[1])
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
