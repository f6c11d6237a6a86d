# SPDX-License-Identifier: GPL-3.0-or-later
"""The AWX survey specs of docs/awx/surveys/ (docs/awx.md): one per job template, each valid as AWX's
survey_spec endpoint checks it (awx/api/views, JobTemplateSurveySpec._validate_spec_data: name, description,
a non-empty spec; per question type, question_name, variable, required; known type; a default of the
type's kind; integer min/max; choices, and a default among them, for multiplechoice), and asking only for
variables the play reads. The address fields hold what a textarea holds, which the plays take apart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SURVEYS = REPO / "docs" / "awx" / "surveys"
PLAYS = ("site", "ban", "unban", "sync", "doctor", "report")
# AWX's JobTemplateSurveySpec.ALLOWED_TYPES: the Python type a non-empty default must have.
ALLOWED_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
                 "integer": int, "float": float}  # fmt: skip
# Secrets have no place in these surveys: the inventory and AWX credentials hold them.
USED_TYPES = {"text", "textarea", "multiplechoice", "integer"}


def survey(play: str) -> dict:
    return json.loads((SURVEYS / f"{play}.json").read_text())


def play_text(play: str) -> str:
    """The play and the task files it imports: every place a variable of the play is read."""
    text = (REPO / "playbooks" / f"{play}.yml").read_text()
    imported = set(re.findall(r"tasks/([\w-]+\.yml)", text))
    return text + "".join((REPO / "playbooks" / "tasks" / name).read_text() for name in sorted(imported))


def test_there_is_one_survey_per_job_template():
    assert sorted(path.stem for path in SURVEYS.glob("*.json")) == sorted(PLAYS)


@pytest.mark.parametrize("play", PLAYS)
def test_survey_is_valid_for_awx(play):
    spec = survey(play)
    assert isinstance(spec.get("name"), str) and spec["name"], "name must be a non-empty string"
    assert isinstance(spec.get("description"), str), "description must be a string"
    assert isinstance(spec.get("spec"), list) and spec["spec"], "spec must be a non-empty list"
    variables = [question.get("variable") for question in spec["spec"]]
    assert len(variables) == len(set(variables)), f"a variable is asked twice: {variables}"
    for question in spec["spec"]:
        assert isinstance(question, dict)
        for field in ("type", "question_name", "variable"):
            assert isinstance(question.get(field), str) and question[field], f"{field}: {question}"
        assert isinstance(question.get("required"), bool), f"required must be a boolean: {question}"
        assert isinstance(question.get("question_description"), str) and question["question_description"]
        kind = question["type"]
        assert kind in ALLOWED_TYPES and kind in USED_TYPES, question
        for key in ("min", "max"):
            assert key not in question or question[key] is None or type(question[key]) is int, question
        if "default" in question and question["default"] != "":
            assert type(question["default"]) is ALLOWED_TYPES[kind], question
        if kind == "integer" and "default" in question:
            low, high, default = question.get("min"), question.get("max"), question["default"]
            assert (low is None or low <= default) and (high is None or default <= high), question
        if kind in ("multiplechoice", "multiselect"):
            choices = question.get("choices")
            choices = choices.splitlines() if isinstance(choices, str) else choices
            assert isinstance(choices, list) and choices, f"choices missing: {question}"
            defaults = question.get("default", "")
            defaults = [d for d in defaults.splitlines() if d.strip()] if isinstance(defaults, str) else defaults
            assert all(default in choices for default in defaults), question
            assert kind != "multiplechoice" or len(defaults) <= 1, question
        # An optional question left blank must send nothing; AWX passes any default that is not null.
        assert question["required"] or "default" not in question, question


@pytest.mark.parametrize("play", PLAYS)
def test_survey_asks_only_for_variables_the_play_reads(play):
    text = play_text(play)
    for question in survey(play)["spec"]:
        assert re.search(rf"\b{re.escape(question['variable'])}\b", text), (
            f"playbooks/{play}.yml never reads {question['variable']}")  # fmt: skip


@pytest.mark.parametrize("play,variable", [("ban", "pfguard_ban"), ("unban", "pfguard_unban")])
def test_a_textarea_of_addresses_is_what_the_play_takes_apart(play, variable, tmp_path):
    """What a survey textarea sends (one per line, or commas), through the filter the play reads it with."""
    question = next(q for q in survey(play)["spec"] if q["variable"] == variable)
    assert question["type"] == "textarea" and question["required"]
    answer = "203.0.113.7\n2001:db8::/64, 198.51.100.0/24\n"
    env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    argv = [str(Path(sys.executable).with_name("ansible")), "localhost", "-c", "local", "-i", "localhost,",
            "-m", "ansible.builtin.debug", "-a", f"msg={{{{ {variable} | pfguard.macos.pf_address_list }}}}",
            "-e", json.dumps({variable: answer})]  # fmt: skip
    # From the checkout's root: its ansible.cfg makes pfguard.macos findable.
    run = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["msg"] == ["203.0.113.7", "2001:db8::/64", "198.51.100.0/24"]


def test_docs_name_every_survey():
    text = (REPO / "docs" / "awx.md").read_text()
    for play in PLAYS:
        assert f"docs/awx/surveys/{play}.json" in text
