"""The imgpipe command's server processes: doctor, migrate, refusals that explain themselves, and `imgpipe run`
over any mix of backends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from support.jobs import assert_invariant, photo, upload
from support.processes import ImgpipeProcess, run_command, wait_for_output
from support.services import S3Server
from support.stacks import EmbeddedStack, ServerStack

pytestmark = pytest.mark.e2e


@pytest.fixture
def server_env(pg_url: str, amqp_url: str, queue_name: str, s3_server: S3Server, bucket_prefix: str) -> dict[str, str]:
    return {
        "IMGPIPE_DATABASE_URL": pg_url,
        "IMGPIPE_BROKER_URL": amqp_url,
        "IMGPIPE_QUEUE_NAME": queue_name,
        **s3_server.env(bucket_prefix),
    }


def test_doctor_reports_versions_and_that_every_backend_answers(server_env: dict[str, str]) -> None:
    assert run_command(["migrate"], server_env).returncode == 0
    done = run_command(["doctor", "--json"], server_env)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["checks"] == {"database": "ok", "broker": "ok", "storage": "ok", "schema": "ok"}
    assert report["versions"]["libvips"].startswith("8.")


def test_doctor_names_what_does_not_answer_and_exits_non_zero(server_env: dict[str, str]) -> None:
    broken = {**server_env, "IMGPIPE_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"}
    done = run_command(["doctor", "--json"], broken)
    assert done.returncode == 1
    checks = json.loads(done.stdout)["checks"]
    assert checks["database"].startswith("FAILED") and checks["broker"] == "ok" and checks["storage"] == "ok"


def test_migrate_is_idempotent_and_leaves_the_schema_current(pg_empty_url: str) -> None:
    env = {"IMGPIPE_DATABASE_URL": pg_empty_url}
    for _ in range(2):
        done = run_command(["migrate"], env)
        assert done.returncode == 0, done.stderr
    assert "newest revision" in done.stdout


@pytest.mark.parametrize("command", ["api", "worker"])
def test_api_and_worker_refuse_the_in_process_queue_with_advice(command: str, tmp_path: Path) -> None:
    done = run_command([command], {"IMGPIPE_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "imgpipe run" in done.stderr and "amqp://" in done.stderr


def test_a_bad_setting_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    done = run_command(["run"], {"IMGPIPE_DATA_DIR": str(tmp_path), "IMGPIPE_STORAGE_URL": "ftp://x"})
    assert done.returncode == 2
    assert "IMGPIPE_STORAGE_URL" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def running(tmp_path: Path) -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(env={}, data_dir=tmp_path / "data").start()
    yield stack
    stack.stop()


def test_a_second_embedded_instance_on_the_same_data_folder_is_refused(running: EmbeddedStack) -> None:
    second = ImgpipeProcess("run", {"IMGPIPE_DATA_DIR": str(running.data_dir), "IMGPIPE_PORT": "0"}).start()
    assert second.process is not None
    assert second.process.wait(30) != 0
    assert "another instance" in second.output()
    second.log.close()
    assert httpx.get(f"{running.url}/health").status_code == 200


@pytest.mark.parametrize("mix", ["postgres+memory+folder", "sqlite+rabbitmq+s3"])
def test_imgpipe_run_works_over_any_mix_of_backends(mix: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if mix == "postgres+memory+folder":
        env = {"IMGPIPE_DATABASE_URL": request.getfixturevalue("pg_empty_url")}
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        env = {
            "IMGPIPE_BROKER_URL": request.getfixturevalue("amqp_url"),
            "IMGPIPE_QUEUE_NAME": request.getfixturevalue("queue_name"),
            **s3.env(request.getfixturevalue("bucket_prefix")),
        }
    stack = EmbeddedStack(env=env, data_dir=tmp_path / "data").start()
    try:
        ids = [upload(stack, photo(i)) for i in range(3)]
        assert_invariant(stack, ids)
    finally:
        stack.stop()


def test_the_api_process_hears_the_workers_status_changes(server_stack: ServerStack) -> None:
    """The API process keeps a listening connection of its own (``adapters/db/listener.py``; how it wakes
    long-polls is ``tests/contract/test_status_push.py``'s), and its long-polls answer."""
    wait_for_output(server_stack.api, "listening for status changes")
    with psycopg.connect(server_stack.env["IMGPIPE_DATABASE_URL"]) as conn:
        listeners = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'imgpipe-status'"
            " AND datname = current_database()"
        ).fetchone()
    assert listeners == (1,)  # the API's; the worker answers no long-polls
    job_id = upload(server_stack, photo(7))
    answered = httpx.get(f"{server_stack.url}/api/v1/images/{job_id}", params={"wait": 30}, timeout=40).json()
    assert answered["status"] in ("PROCESSING", "DONE")
