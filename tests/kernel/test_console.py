"""Failures and progress where the user looks: the console, not only a rule's log.

- `prefalign ... | head` (a reader that goes away) ends quietly, as Unix tools do;
- a file that cannot be read is named, without a traceback;
- progress lines reach the console fd a rule opens (PREFALIGN_CONSOLE), rate-limited;
- with the real Snakemake, a failing step's own message (file:line and key) is on the console.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from conftest import BIN, REPO

from prefalign import progress


def test_a_closed_pipe_ends_quietly():
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write fails
    result = subprocess.run([str(BIN / "prefalign"), "config", "presets"], stdout=write, stderr=subprocess.PIPE,
                            text=True)
    os.close(write)
    assert result.returncode == 141 and result.stderr == ""


def test_a_missing_file_is_named_without_a_traceback(tmp_path):
    result = subprocess.run([str(BIN / "prefalign"), "compare", "--model", tmp_path / "m.json", tmp_path / "g.jsonl",
                             "--baseline", tmp_path / "b.json", tmp_path / "bg.jsonl", "--out", tmp_path / "o.json"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert str(tmp_path / "m.json") in result.stderr


def test_a_missing_model_folder_is_named_by_its_flag(tmp_path):
    result = subprocess.run([str(BIN / "prefalign"), "sft", "--base", tmp_path / "nope", "--train", tmp_path / "t.jsonl",
                             "--out", tmp_path / "o", "--metrics", tmp_path / "m.json", "--log-history",
                             tmp_path / "l.jsonl"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"prefalign sft: config error: --base {tmp_path / 'nope'}: not a model folder" in result.stderr


def test_rate_limited_lines_at_each_tenth_and_after_a_quiet_minute():
    limiter = progress.RateLimiter(1000, heartbeat_s=3600)
    lines = [limiter.line(done, "sft", "step") for done in range(1, 1001)]
    shown = [line for line in lines if line]
    assert len(shown) == 10 and shown[0].startswith("sft: step 100/1000 (10%)")
    slow = progress.RateLimiter(1000, heartbeat_s=0.0)  # every call is a minute later
    assert slow.line(1, "dpo", "step").startswith("dpo: step 1/1000 (0%)")


def test_announce_writes_to_the_log_and_to_the_console_fd(tmp_path):
    script = ("from prefalign.progress import announce, progress\n"
              "for _ in progress(list(range(20)), 'generating'): pass\n"
              "announce('x' * 5000)\n")
    console = tmp_path / "console.txt"
    with open(console, "w") as handle, open(tmp_path / "log.txt", "w") as log:
        env = {**os.environ, "PREFALIGN_CONSOLE": f"{handle.fileno()}:evaluate_model[sft]"}
        subprocess.run([sys.executable, "-c", script], stdout=log, stderr=log, env=env, check=True,
                       pass_fds=(handle.fileno(),))
    shown = console.read_text().splitlines()
    assert shown[0] == "[evaluate_model[sft]] generating: batch 2/20 (10%), 0:00 elapsed, ~0:00 left"
    assert len(shown) == 11 and max(len(line) for line in shown) < 400  # no 11 KB lines on the console
    assert "generating: batch 20/20 (100%)" in (tmp_path / "log.txt").read_text()


@pytest.mark.workflow
def test_a_failing_rule_shows_the_steps_own_error_on_the_console(tmp_path):
    raw = tmp_path / "bad.jsonl"
    raw.write_text('{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: a", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: b"}\n'
                   '{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: a"}\n')
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"datasets": {"bad": {"format": "hh-rlhf", "source": "local", "path": str(raw)},
                                                   "synth": {"format": "hh-rlhf", "source": "synthetic"}}}))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / "run"),
                             "--configfile", str(config), "--cores", "1", "results/data/bad/normalized.jsonl"],
                            capture_output=True, text=True, env=env)
    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"prefalign normalize: input error: {raw}:2: key 'rejected': missing" in said  # the log, on the console
