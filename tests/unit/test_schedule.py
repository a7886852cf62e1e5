"""What is due when: the embedded scheduler's pure rules (ridecast.stack.schedule) with a fixed clock, the
schedules' validation, and how recorded runs read back (a run without its end line is interrupted)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ridecast.config import ScheduleSettings, Settings
from ridecast.stack.schedule import DueRun, due_runs, latest_fire, next_fire, next_wakeup, read_runs, runs_file

UTC = timezone.utc
JOBS = [("retrain", "0 3 * * *"), ("forecast", "*/15 * * * *"), ("maintain", "30 4 * * *")]


def t(h: int, m: int = 0, s: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 12, day, h, m, s, tzinfo=UTC)


def test_latest_and_next_fire_count_the_exact_minute():
    assert latest_fire("*/15 * * * *", "Etc/UTC", t(10, 0)) == t(10, 0)
    assert latest_fire("*/15 * * * *", "Etc/UTC", t(10, 14, 59)) == t(10, 0)
    assert next_fire("*/15 * * * *", "Etc/UTC", t(10, 0)) == t(10, 15)  # strictly after


def test_nothing_is_due_before_the_first_cron_time():
    handled = {job: t(10, 1) for job, _ in JOBS}
    assert due_runs(JOBS, "Etc/UTC", handled, t(10, 14, 59)) == []
    assert due_runs(JOBS, "Etc/UTC", handled, t(10, 15)) == [DueRun("forecast", t(10, 15))]


def test_a_handled_time_is_not_due_again():
    handled = {job: t(10, 15) for job, _ in JOBS}
    assert due_runs(JOBS, "Etc/UTC", handled, t(10, 20)) == []


def test_downtime_runs_each_missed_job_once_for_its_latest_time():
    # the scheduler was down from 02:50 to 05:07: forecast missed 9 times, retrain and maintain once each
    handled = {job: t(2, 50) for job, _ in JOBS}
    due = due_runs(JOBS, "Etc/UTC", handled, t(5, 7))
    assert due == [DueRun("retrain", t(3, 0)), DueRun("maintain", t(4, 30)), DueRun("forecast", t(5, 0))]


def test_same_time_ties_keep_the_jobs_order():
    jobs = [("a", "0 * * * *"), ("b", "0 * * * *")]
    assert [d.job for d in due_runs(jobs, "Etc/UTC", {"a": t(9, 30), "b": t(9, 30)}, t(10, 0))] == ["a", "b"]


def test_a_job_seen_for_the_first_time_is_not_due():
    assert due_runs(JOBS, "Etc/UTC", {}, t(5, 7)) == []


def test_cron_times_are_in_the_schedules_timezone():
    sgt = ZoneInfo("Asia/Singapore")  # 03:00 SGT is 19:00 UTC the day before
    handled = {"retrain": t(18, 0, day=1)}
    assert due_runs([("retrain", "0 3 * * *")], "Asia/Singapore", handled, t(18, 59, day=1)) == []
    (run,) = due_runs([("retrain", "0 3 * * *")], "Asia/Singapore", handled, t(19, 0, day=1))
    assert run.scheduled == datetime(2026, 12, 2, 3, 0, tzinfo=sgt) == t(19, 0, day=1)


def test_next_wakeup_is_the_soonest_job():
    assert next_wakeup(JOBS, "Etc/UTC", t(2, 59)) == t(3, 0)
    assert next_wakeup(JOBS, "Etc/UTC", t(3, 0)) == t(3, 15)
    assert next_wakeup([], "Etc/UTC", t(3, 0)) is None


@pytest.mark.parametrize("cron", ["* * * * * *", "61 * * * *", "every day", "0 3 * *"])
def test_bad_cron_is_a_clear_settings_error(cron):
    with pytest.raises(ValidationError, match="five-field cron expression"):
        ScheduleSettings(retrain=cron)


def test_macros_disabled_jobs_and_timezone():
    s = ScheduleSettings(retrain="@daily", maintain=" ", timezone="Asia/Singapore")  # blank disables
    assert s.jobs() == [("retrain", "@daily"), ("forecast", "*/15 * * * *")]
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        ScheduleSettings(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="no command for forecast"):
        ScheduleSettings(commands={"retrain": ["train"], "maintain": ["maintain"]})


def test_schedules_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("RIDECAST_SCHEDULES__FORECAST", "*/5  *  * * *")
    monkeypatch.setenv("RIDECAST_SCHEDULES__TIMEZONE", "Asia/Singapore")
    s = Settings()
    assert s.schedules.forecast == "*/5 * * * *" and s.schedules.timezone == "Asia/Singapore"


def test_a_run_without_its_end_line_reads_back_as_interrupted(tmp_path):
    s = Settings(home=tmp_path)
    path = runs_file(s)
    path.parent.mkdir(parents=True)
    base = dict(job="forecast", command=["forecast-batch"], scheduled=t(10).isoformat(), log_file="x.log",
                scheduler_pid=999_999_999)
    lines = [dict(event="started", run_id="a", started=t(10, 0, 1).isoformat(), **base),
             dict(event="finished", run_id="a", ended=t(10, 0, 9).isoformat(), outcome="succeeded", exit_code=0),
             dict(event="started", run_id="b", started=t(10, 15, 1).isoformat(), **base)]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n" + '{"event": "fini')  # torn last line
    a, b = read_runs(s)
    assert (a.outcome, a.exit_code, a.ended - a.started) == ("succeeded", 0, timedelta(seconds=8))
    assert (b.outcome, b.ended) == ("interrupted", None)
