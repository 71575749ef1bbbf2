# ringmaster's stdout callback: one JSON document in the shape of
# ansible.posix.json ({"plays": [...], "stats": {...}}), shipped with the
# project because ansible-core alone has no JSON callback.
from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: json
    type: stdout
    short_description: one JSON document per run (ansible.posix.json shape)
    description:
      - Prints plays, tasks, per-host results and per-host stats as JSON.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "json"

    def __init__(self, display=None):
        super().__init__(display)
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({"play": {"name": play.get_name(), "id": str(play._uuid)}, "tasks": []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.plays[-1]["tasks"].append(
            {"task": {"name": task.get_name(), "id": str(task._uuid)}, "hosts": {}}
        )

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _record(self, result, **flags):
        data = dict(result._result)
        data.update(flags)
        data["action"] = result._task.action
        if self.plays and self.plays[-1]["tasks"]:
            self.plays[-1]["tasks"][-1]["hosts"][result._host.get_name()] = data

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result, **kwargs):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        output = {
            "plays": self.plays,
            "stats": {host: stats.summarize(host) for host in hosts},
            "custom_stats": stats.custom,
        }
        self._display.display(json.dumps(output, sort_keys=True, default=str))
